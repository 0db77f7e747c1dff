package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Summary is the outcome of a load test. Counts and latencies cover the
// messages sent in the measured window, after warmup.
type Summary struct {
	Conns   int     `json:"conns"`
	Users   int     `json:"users"`
	Procs   int     `json:"procs"`
	Senders int     `json:"senders"`
	Warmup  float64 `json:"warmup_seconds"`

	Groups    int `json:"groups,omitempty"`
	GroupSize int `json:"group_size,omitempty"`

	Connected      int            `json:"connected"`
	ConnectFailed  int            `json:"connect_failed"`
	ConnectErrors  map[string]int `json:"connect_errors,omitempty"`
	ConnectSeconds float64        `json:"connect_seconds"`

	MeasuredSeconds    float64 `json:"measured_seconds"`
	Sent               uint64  `json:"sent"`
	Acked              uint64  `json:"acked"`
	Delivered          uint64  `json:"delivered"` // to every connected device of the recipients
	SentPerSecond      float64 `json:"sent_per_second"`
	AckedPerSecond     float64 `json:"acked_per_second"`
	DeliveredPerSecond float64 `json:"delivered_per_second"`
	AckLatency         Latency `json:"ack_latency"`     // from send to ack
	DeliverLatency     Latency `json:"deliver_latency"` // from send to OnMessage at the recipient

	// Received counts the deliveries that arrived during the measured
	// window, whenever their messages were sent: the delivery rate the
	// clients saw.
	Received          uint64  `json:"received"`
	ReceivedPerSecond float64 `json:"received_per_second"`

	// Reads counts the read requests (-read) sent in the measured window
	// and answered; ReadLatency is from request to answer.
	Reads          uint64  `json:"reads,omitempty"`
	ReadsPerSecond float64 `json:"reads_per_second,omitempty"`
	ReadLatency    Latency `json:"read_latency"`

	// Group runs: over the messages acked in the window, the time from
	// send to the last member's delivery (one sample per message), the
	// deliveries due to the other members' devices (all connections of the
	// run counted, so failed connections count as missing), and those that
	// had not come once deliveries stopped (none for a second, at most ten
	// seconds after the last ack).
	LastMemberLatency  Latency `json:"last_member_latency"`
	ExpectedDeliveries uint64  `json:"expected_deliveries,omitempty"`
	MissingDeliveries  uint64  `json:"missing_deliveries,omitempty"`

	Errors      map[string]uint64 `json:"errors,omitempty"` // failed sends by error code
	Disconnects uint64            `json:"disconnects"`
	Reconnects  uint64            `json:"reconnects"`
	Kicks       map[string]uint64 `json:"kicks,omitempty"` // by kick code
	Pulls       uint64            `json:"pulls"`           // gap and catch-up pulls by the SDK
	Retransmits uint64            `json:"retransmits"`     // sends repeated after a reconnection or an unavailable

	Idle *IdleMemory `json:"idle,omitempty"`
}

// Latency summarizes a distribution of durations, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// IdleMemory is the server's memory before the connections were opened and
// after they settled.
type IdleMemory struct {
	RSSBefore          int64   `json:"rss_before_bytes"`
	RSSAfter           int64   `json:"rss_after_bytes"`
	BytesPerConn       float64 `json:"bytes_per_conn"`
	GatewayConnsBefore int64   `json:"gateway_conns_before"`
	GatewayConnsAfter  int64   `json:"gateway_conns_after"`
	SettleSeconds      float64 `json:"settle_seconds"`
}

func latencyOf(h *histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Latency{
		Count: h.n,
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   ms(h.max),
	}
}

func (l Latency) String() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms", l.P50, l.P90, l.P99, l.Max)
}

// fmtDuration prints a latency compactly for progress lines.
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(10 * time.Microsecond).String()
}

// WriteText writes the summary for people.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "connections  %d/%d connected in %.1fs over %d process(es), %d users",
		s.Connected, s.Conns, s.ConnectSeconds, s.Procs, s.Users)
	if s.ConnectFailed > 0 {
		fmt.Fprintf(&b, "; %d failed: %s", s.ConnectFailed, fmtCounts(s.ConnectErrors))
	}
	b.WriteByte('\n')
	if s.Idle != nil {
		m := s.Idle
		fmt.Fprintf(&b, "server rss   %.1f MiB before, %.1f MiB after %.0fs settling: %.1f KiB per connection\n",
			mib(m.RSSBefore), mib(m.RSSAfter), m.SettleSeconds, m.BytesPerConn/1024)
		fmt.Fprintf(&b, "gateway      %d connections before, %d after\n", m.GatewayConnsBefore, m.GatewayConnsAfter)
	}
	if s.Groups > 0 {
		fmt.Fprintf(&b, "groups       %d of %d members\n", s.Groups, s.GroupSize)
	}
	if s.Senders > 0 {
		fmt.Fprintf(&b, "measured     %.1fs after %.1fs warmup, %d senders\n", s.MeasuredSeconds, s.Warmup, s.Senders)
		fmt.Fprintf(&b, "sent         %d (%.1f/s)\n", s.Sent, s.SentPerSecond)
		fmt.Fprintf(&b, "acked        %d (%.1f/s), %s\n", s.Acked, s.AckedPerSecond, s.AckLatency)
		fmt.Fprintf(&b, "delivered    %d (%.1f/s), %s\n", s.Delivered, s.DeliveredPerSecond, s.DeliverLatency)
		fmt.Fprintf(&b, "received     %d in the window (%.1f/s)\n", s.Received, s.ReceivedPerSecond)
		if s.Reads > 0 {
			fmt.Fprintf(&b, "reads        %d (%.1f/s), %s\n", s.Reads, s.ReadsPerSecond, s.ReadLatency)
		}
		if s.Groups > 0 {
			fmt.Fprintf(&b, "last member  %d messages, %s\n", s.LastMemberLatency.Count, s.LastMemberLatency)
			fmt.Fprintf(&b, "missing      %d of %d deliveries due\n", s.MissingDeliveries, s.ExpectedDeliveries)
		}
		fmt.Fprintf(&b, "errors       %s\n", fmtCounts(s.Errors))
	}
	fmt.Fprintf(&b, "connection   %d disconnects, %d reconnects, kicks %s, %d pulls, %d retransmits\n",
		s.Disconnects, s.Reconnects, fmtCounts(s.Kicks), s.Pulls, s.Retransmits)
	_, err := io.WriteString(w, b.String())
	return err
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// fmtCounts prints counts by key, sorted, or "none".
func fmtCounts[V int | uint64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
