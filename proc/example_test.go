package proc_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/cnlink/cnlink/proc"
)

// Print process starts and exits until interrupted, and rebuild the
// process table from /proc whenever events were lost. It needs the
// kernel's proc connector, so it has no fixed output.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	m, err := proc.Listen(ctx, proc.Config{Events: proc.MaskFork | proc.MaskExec | proc.MaskExit})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	table := map[int]string{} // pid -> command
	for {
		select {
		case ev := <-m.Events():
			switch ev.Kind {
			case proc.KindFork:
				if ev.PID == ev.TID { // a process, not a thread
					table[ev.PID] = table[ev.ParentPID]
				}
			case proc.KindExec:
				fmt.Printf("exec %d\n", ev.PID)
			case proc.KindExit:
				if ev.PID == ev.TID {
					delete(table, ev.PID)
				}
			case proc.KindLost:
				fmt.Printf("lost events (%v): resync from /proc\n", ev.Loss)
				ps, err := proc.Snapshot()
				if err != nil {
					log.Fatal(err)
				}
				clear(table)
				for _, p := range ps {
					table[p.PID] = p.Comm
				}
			}
		case <-m.Done():
			fmt.Println("monitor ended:", m.Err())
			return
		}
	}
}
