package main

import (
	"context"
	"sync"
	"time"
)

// rssWindow samples a process's VmRSS every rssEvery while a scenario runs,
// so "peak RSS" is the peak within that window. VmHWM, the peak since the
// process started, would carry a restart's or an earlier burst's peak into
// every later figure.
type rssWindow struct {
	stop chan struct{}
	done chan struct{}

	mu          sync.Mutex
	peak, last  int64 // KiB
	samples     int
	first, end  procSample
	sampleError error
}

// rssEvery is the sampling period of rssWindow: a GC cycle of the
// controller at 10,000 CVs takes longer than this, so its peak is seen.
const rssEvery = 200 * time.Millisecond

// watchRSS starts sampling p until the window is closed.
func watchRSS(ctx context.Context, p *ctrlProc) *rssWindow {
	w := &rssWindow{stop: make(chan struct{}), done: make(chan struct{})}
	w.record(p)
	go func() {
		defer close(w.done)
		t := time.NewTicker(rssEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			case <-t.C:
				w.record(p)
			}
		}
	}()
	return w
}

func (w *rssWindow) record(p *ctrlProc) {
	s, err := p.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.sampleError = err
		return
	}
	if w.samples == 0 {
		w.first = s
	}
	w.end, w.last, w.samples = s, s.rssKiB, w.samples+1
	w.peak = max(w.peak, s.rssKiB)
}

// windowFigures is what a closed window reports.
type windowFigures struct {
	RSSMiB     float64 // at the end of the window
	PeakRSSMiB float64 // the largest sample within the window
	CPUPercent float64 // share of one core over the window
	Samples    int
}

// close stops sampling (after one last sample) and returns the figures.
func (w *rssWindow) close(p *ctrlProc) windowFigures {
	close(w.stop)
	<-w.done
	w.record(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	return windowFigures{RSSMiB: float64(w.last) / 1024, PeakRSSMiB: float64(w.peak) / 1024,
		CPUPercent: cpuPercent(w.first, w.end), Samples: w.samples}
}
