package proc

// flush is the flusher goroutine: it waits, outside the lock, for room for
// the pending loss report.
//
// What it offers the channel is a copy of pending, and a channel send
// cannot recompute its value when room appears, so the copy must never
// go stale while it waits: push kicks on every change to pending, and a
// kick makes the flusher take a fresh copy before it waits again. A
// report therefore holds all the loss detected before the application
// made room for it. Only loss detected at the very moment the report is
// handed over may miss it (the select finds the room and the kick ready
// together and picks one); that loss stays pending and is the next
// report, still ahead of every later event.
func (m *Monitor) flush() {
	defer m.exit()
	for {
		select {
		case <-m.kick:
		case <-m.stop:
			return
		}
	offer:
		for {
			m.mu.Lock()
			rep := m.pending
			m.mu.Unlock()
			if rep.IsZero() {
				break
			}
			select {
			case m.events <- Event{Kind: KindLost, Loss: rep}:
				m.st.delivered.Add(1)
				m.mu.Lock()
				m.pending.sub(rep)
				m.mu.Unlock()
			case <-m.kick:
				continue offer // pending grew: offer the merged report
			case <-m.stop:
				return
			}
		}
	}
}
