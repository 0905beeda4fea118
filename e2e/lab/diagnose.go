package lab

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/e2e/cluster"
)

// activity says what node's PostgreSQL is doing (its sessions, grouped by
// state and wait), for a run that does not come back in time.
func activity(ctx context.Context, c *cluster.Cluster, node string) string {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := c.Superuser(cctx, node, "postgres")
	if err != nil {
		return err.Error()
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(cctx, `SELECT count(*), coalesce(usename, ''), coalesce(state, ''), coalesce(wait_event_type || ':' || wait_event, ''),
		left(regexp_replace(coalesce(query, ''), '\s+', ' ', 'g'), 60), coalesce(max(extract(epoch FROM now() - xact_start)), 0)::int
		FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 2, 3, 4, 5 ORDER BY 1 DESC LIMIT 8`)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for rows.Next() {
		var n, oldest int
		var user, state, wait, query string
		if err := rows.Scan(&n, &user, &state, &wait, &query, &oldest); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "\n    %d × %s %s %s (oldest transaction %d s): %s", n, user, state, wait, oldest, query)
	}
	return b.String()
}
