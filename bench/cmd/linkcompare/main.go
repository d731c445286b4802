// Command linkcompare writes issue 19's comparison of S1-S4 on loopback and through the shaped
// link: each row of a shaped run of bench beside the same row of a loopback run (both written
// with -json), how much slower it was, and whether that stays within the bytes it moved at the
// link's rate plus a round trip per request (bench.LinkAllowance).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/imagesmith/buildah-image-resource/bench"
)

func main() {
	loopback := flag.String("loopback", "", "measurements of the loopback run (bench -json)")
	shaped := flag.String("shaped", "", "measurements of the shaped run (bench -shape -json)")
	flag.Parse()
	if *loopback == "" || *shaped == "" {
		fmt.Fprintln(os.Stderr, "linkcompare: -loopback and -shaped are required")
		os.Exit(2)
	}
	l, err := bench.ReadTables(*loopback)
	if err == nil {
		var s bench.Tables
		if s, err = bench.ReadTables(*shaped); err == nil {
			fmt.Print(bench.CompareLinks(l, s))
			return
		}
	}
	fmt.Fprintf(os.Stderr, "linkcompare: %v\n", err)
	os.Exit(1)
}
