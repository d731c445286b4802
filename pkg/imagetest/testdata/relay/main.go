// Command relay runs in a test container that has no network but its own loopback (a user-
// namespaced Docker daemon refuses the host's network): it listens on TCP addresses there and
// carries each connection to a Unix socket that the test serves outside, then runs its command
// and exits as it did.
//
//	relay ADDR=SOCKET... -- COMMAND [ARG...]
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
)

func main() {
	args := os.Args[1:]
	dash := slices.Index(args, "--")
	if dash < 0 || dash == len(args)-1 {
		fmt.Fprintln(os.Stderr, "usage: relay ADDR=SOCKET... -- COMMAND [ARG...]")
		os.Exit(2)
	}
	for _, spec := range args[:dash] {
		addr, socket, ok := strings.Cut(spec, "=")
		l, err := net.Listen("tcp", addr)
		if !ok || err != nil {
			fmt.Fprintf(os.Stderr, "relay: %s: %v\n", spec, err)
			os.Exit(2)
		}
		go serve(l, socket)
	}
	cmd := exec.Command(args[dash+1], args[dash+2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case err != nil:
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		os.Exit(127)
	}
}

func serve(l net.Listener, socket string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("unix", socket)
			if err != nil {
				fmt.Fprintf(os.Stderr, "relay: %v\n", err)
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}
