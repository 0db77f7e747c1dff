package gateway

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"
)

// Per-message compression (RFC 7692 permessage-deflate) is negotiated with
// no context takeover in both directions: every message is compressed on its
// own, so a connection keeps no compressor state between messages and idle
// connections cost nothing extra. Compressors and decompressors are pooled
// (a flate writer holds about 600 KiB).

var (
	flateWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed) // error only for a bad level
		return w
	}}
	flateReaders = sync.Pool{New: func() any { return flate.NewReader(nil) }}
)

// deflateTail is what a sync flush ends with; RFC 7692 strips it on the wire.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// compress appends the permessage-deflate form of p to dst.
func compress(dst *bytes.Buffer, p []byte) error {
	start := dst.Len()
	w := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(w)
	w.Reset(dst)
	if _, err := w.Write(p); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if bytes.HasSuffix(dst.Bytes()[start:], deflateTail) {
		dst.Truncate(dst.Len() - len(deflateTail))
	}
	return nil
}

// sharedDeflate is the compressed form of one fan-out frame, made by the
// first connection that needs it and reused by the others, so that a frame
// for many connections is compressed once, not once per connection.
type sharedDeflate struct {
	once sync.Once
	out  []byte
	ok   bool
}

// get returns the compressed form of payload, and false if compressing
// failed (the frame then goes as it is).
func (s *sharedDeflate) get(payload []byte) ([]byte, bool) {
	s.once.Do(func() {
		var b bytes.Buffer
		if compress(&b, payload) == nil {
			s.out, s.ok = b.Bytes(), true
		}
	})
	return s.out, s.ok
}

// compressBatch compresses the text frames of batch that are at least min
// bytes long and carry no shared compressed form into dst, one after
// another, and returns for each frame where its compressed bytes end in dst,
// or -1 for a frame it left alone. Callers slice dst only after the whole
// batch, since dst may move as it grows.
func compressBatch(dst *bytes.Buffer, batch []outFrame, min int) []int {
	dst.Reset()
	ends := make([]int, len(batch))
	for i, f := range batch {
		ends[i] = -1
		if f.op != opText || len(f.payload) < min || f.shared != nil {
			continue
		}
		n := dst.Len()
		if err := compress(dst, f.payload); err != nil {
			dst.Truncate(n) // send this one uncompressed
			continue
		}
		ends[i] = dst.Len()
	}
	return ends
}

// decompress inflates a permessage-deflate message, reading at most limit
// bytes of output; tooLarge reports a message that inflates beyond it.
func decompress(p []byte, limit int) (out []byte, tooLarge bool, err error) {
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail))
	if err := r.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, false, err
	}
	out, err = io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, false, err
	}
	if len(out) > limit {
		return nil, true, nil
	}
	return out, false, nil
}
