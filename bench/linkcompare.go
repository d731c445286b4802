package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Tables is what a run of bench measured, as -json writes it: the input of CompareLinks.
type Tables struct {
	Link   Shape
	Tables []Table
}

// ReadTables reads a file -json wrote.
func ReadTables(path string) (Tables, error) {
	var t Tables
	data, err := os.ReadFile(path)
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// WriteTables writes what a run measured as JSON.
func WriteTables(path string, t Tables) error {
	data, err := json.MarshalIndent(t, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// LinkAllowance is what issue 19 lets a put lose to a shaped link against loopback: the bytes it
// moved over one stream at the link's rate, plus one round trip (the link's delay) per request.
// Requests that overlap pay their round trips together, so this is the most the link can cost
// a put that waits for nothing else.
func LinkAllowance(link Shape, t Traffic) float64 {
	if link.Rate <= 0 {
		return 0
	}
	return float64(t.Down+t.Up)/link.Rate + link.Delay.Seconds()*float64(t.Requests)
}

// CompareLinks writes a Markdown table of every row of the shaped run beside the same row of the
// loopback run (medians): how much slower it was through the link, what it moved, and whether
// that stays within LinkAllowance.
func CompareLinks(loopback, shaped Tables) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | tool | loopback wall s | shaped wall s | slower by s | bytes moved (down + up) | requests | allowance s (bytes / %s + %s × requests) | within |\n",
		FormatRate(shaped.Link.Rate), shaped.Link.Delay)
	b.WriteString("|---|---|---:|---:|---:|---|---:|---:|---|\n")
	for _, st := range shaped.Tables {
		lt := findTable(loopback.Tables, st.ID, st.Base)
		for _, sr := range st.Rows {
			lr := findRow(lt, sr.Peer)
			if lr == nil || len(sr.Puts) == 0 || len(lr.Puts) == 0 {
				continue
			}
			s, l := Median(sr.Puts), Median(lr.Puts)
			slower := s.Wall.Seconds() - l.Wall.Seconds()
			allowance := LinkAllowance(shaped.Link, s.Traffic)
			within := "yes"
			if slower > allowance {
				within = "**no**"
			}
			fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %+.1f | %s + %s | %d | %.1f | %s |\n", st.ID, sr.Peer,
				l.Wall.Seconds(), s.Wall.Seconds(), slower, FormatBytes(s.Traffic.Down), FormatBytes(s.Traffic.Up), s.Traffic.Requests, allowance, within)
		}
	}
	return b.String()
}

// FormatRate is a link rate in MB/s.
func FormatRate(bytesPerSecond float64) string { return fmt.Sprintf("%g MB/s", bytesPerSecond/1e6) }

func findTable(tables []Table, id, base string) *Table {
	for i := range tables {
		if tables[i].ID == id && tables[i].Base == base {
			return &tables[i]
		}
	}
	return nil
}

func findRow(t *Table, peer string) *Row {
	if t == nil {
		return nil
	}
	for i := range t.Rows {
		if t.Rows[i].Peer == peer {
			return &t.Rows[i]
		}
	}
	return nil
}
