// pause: the infrastructure process of a pod sandbox, built by scripts/kube-assets.
//
// It holds the pod's namespaces open: it sleeps until SIGINT or SIGTERM and, as PID 1 of
// the pod's PID namespace, reaps the zombies of processes reparented to it. Static
// (CGO_ENABLED=0), standard library only.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause (modelrelease) 1.0")
		return
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}
