// Package chart draws the benchmarks' line charts as plain SVG (no
// graphviz, no plotting library: a fresh machine draws them with Go alone).
// Values are in milliseconds on a logarithmic axis, the way benchmark
// figures spread over orders of magnitude.
package chart

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Series is one curve: a value per point of the chart's X, NaN where it
// was not measured (the line skips it).
type Series struct {
	Name, Colour string
	Y            []float64 // milliseconds
}

// Line is a chart of several series over the same points, drawn evenly
// spaced from left to right in the order given (the benchmarks' points grow
// by factors: 10, 100, 1,000).
type Line struct {
	Title, Caption, XLabel string
	X                      []string // the points' labels
	Series                 []Series
}

// The picture's frame, in SVG units (as fleet-latency.svg's).
const (
	svgW, svgH   = 760, 380
	plotL, plotR = 70, 730
	plotT, plotB = 60, 320
)

// WriteSVG draws the chart: a logarithmic y axis on a 1-2-5 grid in ms,
// each series a polyline with its values written beside its points, and a
// legend.
func (l Line) WriteSVG(w io.Writer) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range l.Series {
		if len(s.Y) != len(l.X) {
			return fmt.Errorf("chart: series %q has %d values for %d points", s.Name, len(s.Y), len(l.X))
		}
		for _, v := range s.Y {
			if !math.IsNaN(v) && v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		return fmt.Errorf("chart: %q has no value to draw", l.Title)
	}
	grid := Grid125(lo/1.5, hi)
	y0, y1 := math.Log10(grid[0]), math.Log10(grid[len(grid)-1])
	y := func(v float64) float64 { return plotB - (math.Log10(math.Max(v, grid[0]))-y0)/(y1-y0)*(plotB-plotT) }
	x := func(i int) float64 { return plotL + (float64(i)+0.5)/float64(len(l.X))*(plotR-plotL) }

	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\">\n", svgW, svgH, svgW, svgH)
	b.WriteString("  <!-- Generated from a benchmark's measurements: do not edit. -->\n")
	fmt.Fprintf(&b, "  <rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", svgW, svgH)
	fmt.Fprintf(&b, "  <text x=\"%d\" y=\"22\" font-size=\"13\" font-weight=\"bold\">%s</text>\n", plotL, html.EscapeString(l.Title))
	fmt.Fprintf(&b, "  <text x=\"%d\" y=\"38\" font-size=\"10\" fill=\"#55606b\">%s</text>\n", plotL, html.EscapeString(l.Caption))
	fmt.Fprintf(&b, "  <line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#55606b\"/>\n", plotL, plotB, plotR, plotB)
	fmt.Fprintf(&b, "  <line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#55606b\"/>\n", plotL, plotT, plotL, plotB)
	for _, v := range grid {
		fmt.Fprintf(&b, "  <line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e4e8\"/>\n", plotL+1, y(v), plotR, y(v))
		fmt.Fprintf(&b, "  <text x=\"%d\" y=\"%.1f\" font-size=\"9\" text-anchor=\"end\" fill=\"#55606b\">%s ms</text>\n", plotL-6, y(v)+3, Value(v))
	}
	for i, lab := range l.X {
		fmt.Fprintf(&b, "  <text x=\"%.1f\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\" fill=\"#55606b\">%s</text>\n", x(i), plotB+17, html.EscapeString(lab))
	}
	fmt.Fprintf(&b, "  <text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n", (plotL+plotR)/2, plotB+38, html.EscapeString(l.XLabel))
	// A point's value is written above it when it is the highest at its x,
	// below it otherwise: close values of two series stay apart.
	top := make([]float64, len(l.X))
	for _, s := range l.Series {
		for i, v := range s.Y {
			if !math.IsNaN(v) {
				top[i] = math.Max(top[i], v)
			}
		}
	}
	for _, s := range l.Series {
		var path []string
		for i, v := range s.Y {
			if !math.IsNaN(v) {
				path = append(path, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
			}
		}
		fmt.Fprintf(&b, "  <polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", strings.Join(path, " "), s.Colour)
		for i, v := range s.Y {
			if math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&b, "  <circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x(i), y(v), s.Colour)
			dy := 13.0
			if v == top[i] {
				dy = -5
			}
			fmt.Fprintf(&b, "  <text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"%s\">%s</text>\n", x(i)+6, y(v)+dy, s.Colour, Value(v))
		}
	}
	for i, s := range l.Series {
		lx := plotL + 12 + 175*i
		fmt.Fprintf(&b, "  <line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", lx, plotT-8, lx+20, plotT-8, s.Colour)
		fmt.Fprintf(&b, "  <text x=\"%d\" y=\"%d\" font-size=\"10\">%s</text>\n", lx+25, plotT-5, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Grid125 is the 1-2-5 values from the last one at or under lo to the
// first one at or over hi: a logarithmic axis's grid lines.
func Grid125(lo, hi float64) []float64 {
	var all []float64
	for p := math.Pow(10, math.Floor(math.Log10(lo))); len(all) == 0 || all[len(all)-1] < hi; p *= 10 {
		all = append(all, p, 2*p, 5*p)
	}
	first, last := 0, len(all)-1
	for i, v := range all {
		if v <= lo {
			first = i
		}
	}
	for i := len(all) - 1; i >= 0 && all[i] >= hi; i-- {
		last = i
	}
	return all[first : last+1]
}

// Value is a figure in ms as a chart writes it: to a tenth under 100, whole
// above, with thousands separated (12,345).
func Value(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%g", math.Round(v*10)/10)
	}
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
