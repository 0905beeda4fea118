package lab

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// drawPhases draws the median leader crash as one stacked bar: each
// segment is a phase, from the end of the one before it to its own end
// (a phase whose median ends before the previous one's gets no width),
// with a legend that gives each phase's share and end.
func drawPhases(stats []phaseStat, runs int) []byte {
	const (
		left, width = 20.0, 860.0
		barY, barH  = 50.0, 36.0
		legendY     = 130.0
		lineH       = 18.0
	)
	var end time.Duration
	for _, s := range stats {
		end = max(end, s.median)
	}
	if end <= 0 {
		end = time.Second
	}
	scale := width / float64(end)
	x := func(d time.Duration) float64 { return left + float64(d)*scale }
	h := legendY + lineH*float64(len(stats)) + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", left*2+width, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14" font-weight="bold">Where a leader crash's time goes: median of %d runs, from the power cut (make bench)</text>`+"\n", left, runs)
	for t := time.Duration(0); t <= end; t += 500 * time.Millisecond {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ccc"/><text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%d ms</text>`+"\n",
			x(t), barY-6, x(t), barY+barH+6, x(t), barY+barH+20, t.Milliseconds())
	}
	prev := time.Duration(0)
	for i, s := range stats {
		from, to := prev, max(prev, s.median)
		color := s.color
		if to > from {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s" stroke="white" stroke-width="0.5"><title>%s: %d ms</title></rect>`+"\n",
				x(from), barY, x(to)-x(from), barH, color, html.EscapeString(s.label), (to - from).Milliseconds())
			if x(to)-x(from) > 40 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="white" font-size="11">%d</text>`+"\n", (x(from)+x(to))/2, barY+barH/2+4, (to - from).Milliseconds())
			}
		}
		y := legendY + lineH*float64(i)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s: +%d ms, ends at %d ms (p95 %d ms)</text>`+"\n",
			left, y-10, color, left+18, y, html.EscapeString(s.label), (to - from).Milliseconds(), s.median.Milliseconds(), s.p95.Milliseconds())
		prev = to
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}
