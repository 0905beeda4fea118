package httpserver

import (
	"context"
	"net/http"
	"time"
)

// Route is one endpoint of a JSON API served by a value of type S (the
// peer API's server, the local API's): its method, how long its handler
// may take, and the handler, which answers a status and a value to encode.
type Route[S any] struct {
	Method   string
	Deadline time.Duration
	Serve    func(s S, ctx context.Context, body []byte) (int, any)
}

// Find returns the route of r's path. When there is none, or r uses
// another method, it answers 404, or 405 with Allow, through refuse (each
// API words its own error body) and returns false.
func Find[S any](routes map[string]Route[S], w http.ResponseWriter, r *http.Request, refuse func(code int, msg string)) (Route[S], bool) {
	rt, ok := routes[r.URL.Path]
	if !ok {
		refuse(http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		return rt, false
	}
	if r.Method != rt.Method {
		w.Header().Set("Allow", rt.Method)
		refuse(http.StatusMethodNotAllowed, r.URL.Path+" needs "+rt.Method)
		return rt, false
	}
	return rt, true
}

// Run calls the route's handler with its deadline.
func (rt Route[S]) Run(s S, ctx context.Context, body []byte) (int, any) {
	ctx, cancel := context.WithTimeout(ctx, rt.Deadline)
	defer cancel()
	return rt.Serve(s, ctx, body)
}

// On makes a Route, so that a route table reads as one line per endpoint.
func On[S any](method string, deadline time.Duration, serve func(S, context.Context, []byte) (int, any)) Route[S] {
	return Route[S]{Method: method, Deadline: deadline, Serve: serve}
}
