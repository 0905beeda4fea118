package chart

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

func TestGrid125(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   string
	}{
		{26, 9094.7, "[20 50 100 200 500 1000 2000 5000 10000]"},
		{12, 500, "[10 20 50 100 200 500]"},
		{0.5, 3, "[0.5 1 2 5]"},
	} {
		if got := fmt.Sprint(Grid125(tc.lo, tc.hi)); got != tc.want {
			t.Errorf("Grid125(%v, %v) = %s, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
}

func TestValue(t *testing.T) {
	for v, want := range map[float64]string{3.14159: "3.1", 99.94: "99.9", 2040: "2,040", 1234567: "1,234,567", 250: "250"} {
		if got := Value(v); got != want {
			t.Errorf("Value(%v) = %q, want %q", v, got, want)
		}
	}
}

// The picture is well-formed SVG, shows every measured value and the
// legend, and skips a point that was not measured.
func TestWriteSVG(t *testing.T) {
	l := Line{Title: "Restore & RTO", Caption: "2 cores <noisy>", XLabel: "MB",
		X: []string{"10", "100", "1000"},
		Series: []Series{
			{Name: "rto", Colour: "#1e88e5", Y: []float64{2040, 2110, 2560}},
			{Name: "base backup", Colour: "#e53935", Y: []float64{900, math.NaN(), 41000}},
		}}
	var b bytes.Buffer
	if err := l.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(b.String()))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b.String())
		}
	}
	for _, want := range []string{"2,040", "2,110", "2,560", "900", "41,000", "rto", "base backup", "Restore &amp; RTO", "&lt;noisy&gt;"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the picture lacks %q", want)
		}
	}
	if n := strings.Count(b.String(), "<circle"); n != 5 {
		t.Errorf("%d points drawn, want 5 (one not measured)", n)
	}
	if err := (Line{X: []string{"1"}, Series: []Series{{Y: []float64{1, 2}}}}).WriteSVG(io.Discard); err == nil {
		t.Error("a series longer than the points was drawn")
	}
}
