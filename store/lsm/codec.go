package lsm

import (
	"encoding/binary"
	"errors"
)

// Keys. Every key starts with a one-byte table tag; ids never contain 0x00,
// which separates the parts of a key, so prefixes never overlap.
const (
	tagHead     = 'h' // h <conv>                  → head
	tagMessage  = 'm' // m <conv> 0 <seq, 8 bytes> → message
	tagClient   = 'k' // k <sender> 0 <client id>  → conv 0 seq: de-duplication
	tagMember   = 'u' // u <user> 0 <conv>         → member
	tagAudience = 'a' // a <conv> 0 <user>        → nothing: current members
	tagVersion  = 'v' // v                         → the version counter
)

var versionKey = []byte{tagVersion}

func headKey(conv string) []byte {
	return append([]byte{tagHead}, conv...)
}

func messageKey(conv string, seq int64) []byte {
	return appendMessageKey(make([]byte, 0, 2+len(conv)+8), conv, seq)
}

func appendMessageKey(k []byte, conv string, seq int64) []byte {
	k = append(k, tagMessage)
	k = append(k, conv...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

// messagePrefix is the prefix of every message key of conv.
func messagePrefix(conv string) []byte {
	return append(append([]byte{tagMessage}, conv...), 0)
}

func clientKey(sender, clientID string) []byte {
	return appendClientKey(make([]byte, 0, 2+len(sender)+len(clientID)), sender, clientID)
}

func appendClientKey(k []byte, sender, clientID string) []byte {
	k = append(k, tagClient)
	k = append(k, sender...)
	k = append(k, 0)
	return append(k, clientID...)
}

func memberKey(user, conv string) []byte {
	k := make([]byte, 0, 2+len(user)+len(conv))
	k = append(k, tagMember)
	k = append(k, user...)
	k = append(k, 0)
	return append(k, conv...)
}

// memberPrefix is the prefix of every member key of user.
func memberPrefix(user string) []byte {
	return append(append([]byte{tagMember}, user...), 0)
}

func audienceKey(conv, user string) []byte {
	k := make([]byte, 0, 2+len(user)+len(conv))
	k = append(k, tagAudience)
	k = append(k, conv...)
	k = append(k, 0)
	return append(k, user...)
}

func audiencePrefix(conv string) []byte {
	return append(append([]byte{tagAudience}, conv...), 0)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
// The prefixes here end in 0x00 or a printable byte, never 0xff.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	end[len(end)-1]++
	return end
}

// errCorrupt reports a value that does not decode.
var errCorrupt = errors.New("lsm: corrupt value")

// enc appends the fields of a value: varints and length-prefixed byte
// strings.
type enc []byte

func (e enc) int(v int64) enc    { return binary.AppendVarint(e, v) }
func (e enc) str(s string) enc   { return append(binary.AppendUvarint(e, uint64(len(s))), s...) }
func (e enc) bytes(b []byte) enc { return append(binary.AppendUvarint(e, uint64(len(b))), b...) }
func (e enc) bool(b bool) enc {
	if b {
		return append(e, 1)
	}
	return append(e, 0)
}

// dec reads what enc wrote; the first failure sticks in err.
type dec struct {
	b   []byte
	err error
}

func (d *dec) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) raw() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errCorrupt
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.raw()) }

// bytes returns a copy, since values read from Pebble are valid only until
// their closer is closed.
func (d *dec) bytes() []byte {
	r := d.raw()
	if r == nil {
		return nil
	}
	return append([]byte(nil), r...)
}

func (d *dec) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < 1 {
		d.err = errCorrupt
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}
