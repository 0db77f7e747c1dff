package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Metrics read from the server in idle mode.
const (
	metricRSS   = "process_resident_memory_bytes"
	metricConns = "parley_gateway_connections"
)

// fileReserve is the number of open files a process keeps for other uses
// than connections.
const fileReserve = 256

// autoConnsPerProc is the most connections Procs 0 puts in one process:
// more processes also spread the clients' garbage collection over cores.
const autoConnsPerProc = 10_000

// startDelay lets every shard receive the start command before sending
// begins.
const startDelay = 200 * time.Millisecond

// shard is the parent's handle on one shard, in this process or a child.
type shard struct {
	in  io.WriteCloser // commands, one JSON value per line
	enc *json.Encoder  // on in
}

// shardEvent is a report from shard i, or with end set, its exit.
type shardEvent struct {
	i   int
	r   report
	end bool
	err error
}

// Run performs the load test that cfg describes and returns its summary.
// It writes a line of progress per second to progress. If ctx ends early
// the connections are closed and the summary covers what was measured. Run
// returns an error with a partial summary when a shard fails.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	progress = &lockedWriter{w: progress} // shards and children write to it too
	procs, err := cfg.processes(openFileLimit())
	if err != nil {
		return nil, err
	}
	a := newTarget(cfg.URL, cfg.AdminKey)
	t0 := time.Now()
	fmt.Fprintf(progress, "loadgen: creating %d users and %d groups and minting %d tokens\n", cfg.Users, cfg.Groups, cfg.Conns)
	specs, err := setup(ctx, &cfg, a)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "loadgen: setup done in %.1fs; connecting over %d process(es)\n", time.Since(t0).Seconds(), procs)

	sum := &Summary{Conns: cfg.Conns, Users: cfg.Users, Procs: procs, Senders: cfg.Senders, Warmup: cfg.Warmup.Seconds(),
		Groups: cfg.Groups, GroupSize: cfg.GroupSize}
	var before map[string]float64
	if cfg.Idle {
		sum.Senders = 0
		if before, err = a.scrapeMetrics(ctx, metricRSS, metricConns); err != nil {
			return nil, err
		}
	}

	jobs := makeJobs(&cfg, specs, procs)
	events := make(chan shardEvent, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	shards := make([]*shard, len(jobs))
	for i, j := range jobs {
		if shards[i], err = startShard(ctx, &cfg, procs, i, j, events, &wg, progress); err != nil {
			abandon(shards, events)
			return nil, err
		}
	}
	co := coordinator{cfg: &cfg, target: a, shards: shards, progress: progress, sum: sum, before: before}
	return sum, co.run(ctx, events)
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer // guarded by mu
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// abandon closes the inputs of the shards that started, which makes them
// exit, and waits for their ends.
func abandon(shards []*shard, events <-chan shardEvent) {
	started := 0
	for _, s := range shards {
		if s != nil {
			s.in.Close()
			started++
		}
	}
	for started > 0 {
		if ev := <-events; ev.end {
			started--
		}
	}
}

// processes returns how many shard processes to use given the open-file
// limit of a process (0 if unknown).
func (c *Config) processes(limit int) (int, error) {
	perProc := autoConnsPerProc
	if limit > 0 {
		perProc = min(perProc, limit-fileReserve)
	}
	if c.Procs == 0 || perProc <= 0 {
		return max(1, (c.Conns+perProc-1)/max(perProc, 1)), nil
	}
	if most := (c.Conns + c.Procs - 1) / c.Procs; limit > 0 && most > limit-fileReserve {
		return 0, fmt.Errorf("loadgen: %d connections per process exceed the open-file limit of %d; use more -procs", most, limit)
	}
	return c.Procs, nil
}

// makeJobs deals the connections out to procs shards.
func makeJobs(c *Config, specs []connSpec, procs int) []job {
	wsURL := "ws" + strings.TrimPrefix(strings.TrimSuffix(c.URL, "/"), "http") + "/v1/ws"
	var interval time.Duration
	if c.Rate > 0 {
		interval = time.Duration(float64(c.Senders*c.Inflight) / c.Rate * float64(time.Second))
	}
	jobs := make([]job, procs)
	for i := range jobs {
		jobs[i] = job{
			WSURL:       wsURL,
			UserPrefix:  c.UserPrefix,
			Users:       c.Users,
			Contacts:    c.Contacts,
			Groups:      c.Groups,
			GroupSize:   c.GroupSize,
			Interval:    interval,
			Inflight:    c.Inflight,
			Size:        c.Size,
			Read:        c.Read,
			Warmup:      c.Warmup,
			Duration:    c.Duration,
			ConnectRate: c.ConnectRate / float64(procs),
		}
	}
	for i, s := range specs {
		jobs[i%procs].Conns = append(jobs[i%procs].Conns, s)
	}
	return jobs
}

// startShard starts shard i, in this process if there is one shard and in
// a child process otherwise, and sends it its job. Its reports go to
// events, followed by an end event; wg counts the goroutines involved.
func startShard(ctx context.Context, c *Config, procs, i int, j job, events chan<- shardEvent, wg *sync.WaitGroup, progress io.Writer) (*shard, error) {
	var (
		in   io.WriteCloser
		out  io.Reader
		wait func() error
	)
	if procs == 1 {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		wg.Go(func() {
			err := serveShard(ctx, inR, outW, progress)
			inR.Close()
			outW.CloseWithError(err)
			done <- err
		})
		in, out, wait = inW, outR, func() error { return <-done }
	} else {
		if len(c.Command) == 0 {
			return nil, errors.New("loadgen: no command to start child processes with; use -procs 1")
		}
		// Not bound to ctx: when it ends, children are told to stop, so
		// that they report what they measured.
		cmd := exec.Command(c.Command[0], append(c.Command[1:], "-child")...)
		cmd.Stderr = progress
		var err error
		if in, err = cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("loadgen: start child %d: %w", i, err)
		}
		if out, err = cmd.StdoutPipe(); err != nil {
			return nil, fmt.Errorf("loadgen: start child %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("loadgen: start child %d: %w", i, err)
		}
		wait = cmd.Wait
	}
	s := &shard{in: in, enc: json.NewEncoder(in)}
	wg.Go(func() {
		dec := json.NewDecoder(out)
		for {
			var r report
			if err := dec.Decode(&r); err != nil {
				break
			}
			events <- shardEvent{i: i, r: r}
		}
		err := wait()
		if err != nil {
			err = fmt.Errorf("loadgen: shard %d: %w", i, err)
		}
		events <- shardEvent{i: i, end: true, err: err}
	})
	if err := s.enc.Encode(j); err != nil {
		return s, fmt.Errorf("loadgen: send job to shard %d: %w", i, err)
	}
	return s, nil
}

// coordinator drives the shards through the test and prints progress.
type coordinator struct {
	cfg      *Config
	target   *target
	shards   []*shard
	progress io.Writer
	sum      *Summary
	before   map[string]float64 // idle mode: metrics before connecting

	started   time.Time // when connecting began
	sending   time.Time // when sending began; zero before
	ready     int
	results   []*shardResult
	stopped   bool
	connected []int64 // latest connection count per shard
	phase     string
	second    tick // the progress second being accumulated
}

// run handles shard events until every shard has exited.
func (co *coordinator) run(ctx context.Context, events <-chan shardEvent) error {
	co.started = time.Now()
	co.results = make([]*shardResult, len(co.shards))
	co.connected = make([]int64, len(co.shards))
	co.phase = phaseConnect
	every := time.NewTicker(time.Second)
	defer every.Stop()
	var (
		settle <-chan time.Time
		done   = ctx.Done()
		errs   []error
	)
	for ended := 0; ended < len(co.shards); {
		select {
		case ev := <-events:
			switch {
			case ev.end:
				ended++
				if ev.err == nil && co.results[ev.i] == nil {
					ev.err = fmt.Errorf("loadgen: shard %d exited without a result", ev.i)
				}
				if ev.err != nil {
					errs = append(errs, ev.err)
					co.stop() // the others end early rather than run unattended
				}
			case ev.r.Ready != nil:
				co.ready++
				co.sum.Connected += ev.r.Ready.Connected
				co.sum.ConnectFailed += ev.r.Ready.Failed
				if co.ready == len(co.shards) {
					settle = co.allReady()
				}
			case ev.r.Tick != nil:
				co.addTick(ev.i, ev.r.Tick)
			case ev.r.Result != nil:
				co.results[ev.i] = ev.r.Result
				if co.collected() {
					for _, s := range co.shards {
						s.in.Close()
					}
				}
			}
		case <-every.C:
			co.printProgress()
		case <-settle:
			settle = nil
			if err := co.measureIdle(ctx); err != nil {
				errs = append(errs, err)
			}
			co.stop()
		case <-done:
			done = nil
			co.stop()
		}
	}
	co.summarize()
	return errors.Join(errs...)
}

// allReady starts sending, or in idle mode returns when to read memory.
func (co *coordinator) allReady() <-chan time.Time {
	fmt.Fprintf(co.progress, "loadgen: %d/%d connected (%d failed) in %.1fs\n",
		co.sum.Connected, co.cfg.Conns, co.sum.ConnectFailed, time.Since(co.started).Seconds())
	if co.cfg.Idle {
		co.phase = phaseReady
		return time.After(co.cfg.Settle)
	}
	co.phase = phaseReady
	co.sending = time.Now().Add(startDelay)
	co.broadcast(command{Start: co.sending.UnixNano()})
	return nil
}

// measureIdle reads the server's memory now that the connections settled.
func (co *coordinator) measureIdle(ctx context.Context) error {
	after, err := co.target.scrapeMetrics(ctx, metricRSS, metricConns)
	if err != nil {
		return err
	}
	m := &IdleMemory{
		RSSBefore:          int64(co.before[metricRSS]),
		RSSAfter:           int64(after[metricRSS]),
		GatewayConnsBefore: int64(co.before[metricConns]),
		GatewayConnsAfter:  int64(after[metricConns]),
		SettleSeconds:      co.cfg.Settle.Seconds(),
	}
	if co.sum.Connected > 0 {
		m.BytesPerConn = float64(m.RSSAfter-m.RSSBefore) / float64(co.sum.Connected)
	}
	co.sum.Idle = m
	return nil
}

// stop asks every shard to stop, once.
func (co *coordinator) stop() {
	if !co.stopped {
		co.stopped = true
		co.broadcast(command{Stop: true})
	}
}

func (co *coordinator) broadcast(c command) {
	for _, s := range co.shards {
		_ = s.enc.Encode(c) // a shard that is gone reports its own end
	}
}

func (co *coordinator) collected() bool {
	for _, r := range co.results {
		if r == nil {
			return false
		}
	}
	return true
}

func (co *coordinator) addTick(i int, t *tick) {
	co.connected[i] = t.Connected
	if i == 0 {
		co.phase = t.Phase
	}
	s := &co.second
	s.Sent += t.Sent
	s.Acked += t.Acked
	s.Delivered += t.Delivered
	s.Errors += t.Errors
	s.Ack.add(&t.Ack)
	s.Deliver.add(&t.Deliver)
}

// printProgress prints the second accumulated from the shards' ticks.
func (co *coordinator) printProgress() {
	s := &co.second
	var conns int64
	for _, n := range co.connected {
		conns += n
	}
	elapsed := time.Since(co.started)
	if !co.sending.IsZero() {
		elapsed = time.Since(co.sending)
	}
	line := fmt.Sprintf("[%-7s %5.0fs] conns %d/%d", co.phase, elapsed.Seconds(), conns, co.cfg.Conns)
	if !co.sending.IsZero() {
		line += fmt.Sprintf(" | sent %d/s acked %d/s delivered %d/s | ack p50 %s p99 %s | deliver p50 %s p99 %s | errors %d",
			s.Sent, s.Acked, s.Delivered,
			fmtDuration(s.Ack.quantile(0.5)), fmtDuration(s.Ack.quantile(0.99)),
			fmtDuration(s.Deliver.quantile(0.5)), fmtDuration(s.Deliver.quantile(0.99)), s.Errors)
	}
	fmt.Fprintln(co.progress, line)
	co.second = tick{}
}

// summarize folds the shards' results into the summary.
func (co *coordinator) summarize() {
	sum := co.sum
	var (
		ack, deliver, read histogram
		groups             fanoutTally
	)
	for _, r := range co.results {
		if r == nil {
			continue
		}
		sum.ConnectSeconds = max(sum.ConnectSeconds, r.ConnectSeconds)
		sum.MeasuredSeconds = max(sum.MeasuredSeconds, r.Measured.Seconds())
		sum.Sent += r.Sent
		sum.Acked += r.Acked
		sum.Delivered += r.Delivered
		sum.Received += r.Received
		sum.Reads += r.Reads
		groups.add(r.GroupDelivered, r.GroupAcked)
		sum.Disconnects += r.Disconnects
		sum.Reconnects += r.Reconnects
		sum.Pulls += r.Pulls
		sum.Retransmits += r.Retransmits
		addCounts(&sum.ConnectErrors, r.ConnectErrors)
		addCounts(&sum.Errors, r.Errors)
		addCounts(&sum.Kicks, r.Kicks)
		ack.add(&r.Ack)
		deliver.add(&r.Deliver)
		read.add(&r.Read)
	}
	if d := sum.MeasuredSeconds; d > 0 {
		sum.SentPerSecond = float64(sum.Sent) / d
		sum.AckedPerSecond = float64(sum.Acked) / d
		sum.DeliveredPerSecond = float64(sum.Delivered) / d
		sum.ReceivedPerSecond = float64(sum.Received) / d
		sum.ReadsPerSecond = float64(sum.Reads) / d
	}
	if co.cfg.Groups > 0 {
		f := groups.result(co.cfg)
		sum.LastMemberLatency = latencyOf(&f.last)
		sum.ExpectedDeliveries = f.expected
		sum.MissingDeliveries = f.missing
	}
	sum.AckLatency = latencyOf(&ack)
	sum.DeliverLatency = latencyOf(&deliver)
	sum.ReadLatency = latencyOf(&read)
}

func addCounts[V int | uint64](dst *map[string]V, src map[string]V) {
	for k, v := range src {
		if *dst == nil {
			*dst = make(map[string]V)
		}
		(*dst)[k] += v
	}
}
