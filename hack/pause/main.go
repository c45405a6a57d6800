// Command pause is the sandbox ("pause") container of every pod on the ACGS dev node.
//
// It holds the pod's namespaces open and does nothing else: it blocks until SIGINT or SIGTERM and then
// exits 0, and as PID 1 of a pod sharing its PID namespace it reaps orphaned children on SIGCHLD.
// It is built statically (CGO_ENABLED=0) by acgs_operator.devenv.images.build_pause_image into an image
// holding only /pause, the equivalent of registry.k8s.io/pause, which cannot be pulled here.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const version = "3.10-acgs"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "-v", "--version", "version":
			fmt.Printf("pause %s\n", version)
			return
		}
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child; several SIGCHLDs may arrive as one.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
