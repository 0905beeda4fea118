package harness

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// LogRecords reads the records whose msg is msg from a log written by
// slog's text handler (the agent's: key=value pairs, a value quoted when
// it holds a space, a quote or an equals sign), each as its keys and
// values. Checks that count events from a log match on a record's fixed
// message and its values (a term's kind, say), never on the words of a
// sentence that may be reworded. Lines that are not such records (a
// process's own output) are passed over.
func LogRecords(path, msg string) ([]map[string]string, error) {
	return LogRecordsWhere(path, func(rec map[string]string) bool { return rec["msg"] == msg })
}

// LogRecordsWhere reads the records for which keep says yes (a transition
// is the record with "from" and "to" fields: its msg names the row).
func LogRecordsWhere(path string, keep func(map[string]string) bool) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]string
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if rec := logfmt(strings.TrimRight(line, "\n")); rec != nil && keep(rec) {
			out = append(out, rec)
		}
		if err != nil {
			return out, nil // io.EOF, or a log cut short: what was read
		}
	}
}

// logfmt splits one line of key=value pairs; nil if it is not one (a pair
// without '=', or a quoted value that does not end).
func logfmt(line string) map[string]string {
	rec := map[string]string{}
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], ` "`) {
			return nil
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil
			}
			if val, err = strconv.Unquote(q); err != nil {
				return nil
			}
			s = s[len(q):]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		rec[key] = val
	}
	if len(rec) == 0 {
		return nil
	}
	return rec
}
