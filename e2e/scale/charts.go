package scale

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/twonode-edge/twonode/e2e/chart"
)

const (
	rtoColour, rewindColour, copyColour, watchColour = "#1e88e5", "#43a047", "#e53935", "#8e24aa"
)

// Charts are the run's two pictures: its rows of each curve, in order.
func Charts(rows []Row, caption string) (datastore, watches chart.Line) {
	datastore = chart.Line{Title: "Leader crash and restore against the datastore's size",
		Caption: caption, XLabel: "Kine rows in the datastore (MB, pg_total_relation_size; no watch open)"}
	rto := chart.Series{Name: "leader crash RTO", Colour: rtoColour}
	rewind := chart.Series{Name: "restore, short outage (rewind path)", Colour: rewindColour}
	copied := chart.Series{Name: "restore, long outage (base backup)", Colour: copyColour}
	watches = chart.Line{Title: "Leader crash against open watches",
		Caption: caption, XLabel: "watches open on the survivor's Kine during the crash"}
	wrto := chart.Series{Name: "leader crash RTO", Colour: rtoColour}
	resumed := chart.Series{Name: "every watch delivering again", Colour: watchColour}
	for _, r := range rows {
		switch r.Curve {
		case "datastore":
			datastore.X = append(datastore.X, chart.Value(r.DataMB))
			rto.Y = append(rto.Y, float64(r.LeaderCrashRTOms))
			rewind.Y = append(rewind.Y, float64(r.RewindRestoreMs))
			copied.Y = append(copied.Y, msOrNaN(r.BaseBackupRestoreMs))
		case "watches":
			watches.X = append(watches.X, strconv.Itoa(r.Watches))
			wrto.Y = append(wrto.Y, float64(r.LeaderCrashRTOms))
			resumed.Y = append(resumed.Y, msOrNaN(r.WatchesResumedMs))
		}
	}
	datastore.Series = []chart.Series{rto, rewind, copied}
	watches.Series = []chart.Series{wrto, resumed}
	return datastore, watches
}

func msOrNaN(v *int64) float64 {
	if v == nil {
		return math.NaN()
	}
	return float64(*v)
}

// drawCharts writes both pictures into dir.
func drawCharts(dir string, rows []Row, caption string) error {
	ds, ws := Charts(rows, caption)
	for name, l := range map[string]chart.Line{"scaling-datastore.svg": ds, "scaling-watches.svg": ws} {
		if len(l.X) == 0 {
			continue
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = l.WriteSVG(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("scale: drawing %s: %w", name, err)
		}
	}
	return nil
}
