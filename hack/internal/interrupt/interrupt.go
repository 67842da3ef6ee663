// Package interrupt ends make demo and make bench in order on Ctrl-C: the run is cancelled, so that the
// manager, the simulator and the control plane are stopped before the command exits.
package interrupt

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// CancelOnSignals cancels the run on the first SIGINT or SIGTERM (after calling first, when not nil),
// calls second on the second one, and exits 130 on the third, which may leave kube-apiserver and etcd
// running. It does not return: run it in a goroutine.
func CancelOnSignals(cancel context.CancelFunc, first, second func()) {
	ch := make(chan os.Signal, 3)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	for n := 1; ; n++ {
		<-ch
		switch n {
		case 1:
			if first != nil {
				first()
			}
			cancel()
		case 2:
			second()
		default:
			os.Exit(130)
		}
	}
}
