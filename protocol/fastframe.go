package protocol

import (
	"bytes"
	"strconv"
)

// The hot frames, read without encoding/json: a send frame on the server,
// and an ack or a message push in the SDK. Each parser takes exactly the
// shape its writer produces (the SDKs' send frame; AppendAckFrame and
// AppendMessagePush) and reports ok false for anything else, however valid,
// which then goes to encoding/json. encoding/json spends about 3 µs on
// such a frame, these a tenth of that.

// ParseSendFrame decodes a send frame written the way both SDKs write it,
// field for field:
//
//	{"type":"send","id":"7","data":{"cid":"c1","to":"bob","ctype":"text","content":{…}}}
//
// ("conv" may stand for "to"), with ids and content type in plain ASCII.
// The content's bytes are checked only for their extent: the message
// service validates and compacts content (IsCompactJSON, json.Compact)
// before it goes anywhere. Content aliases frame.
func ParseSendFrame(frame []byte) (id string, s Send, ok bool) {
	p := frameParser{b: frame}
	if !p.lit(`{"type":"send","id":`) {
		return "", Send{}, false
	}
	id, ok = p.str()
	if !ok || !p.lit(`,"data":{"cid":`) {
		return "", Send{}, false
	}
	if s.ClientID, ok = p.str(); !ok {
		return "", Send{}, false
	}
	var target *string
	switch {
	case p.lit(`,"to":`):
		target = &s.To
	case p.lit(`,"conv":`):
		target = &s.Conversation
	default:
		return "", Send{}, false
	}
	if *target, ok = p.str(); !ok || !p.lit(`,"ctype":`) {
		return "", Send{}, false
	}
	if s.ContentType, ok = p.str(); !ok || !p.lit(`,"content":`) {
		return "", Send{}, false
	}
	start := p.i
	if !p.skipValue() {
		return "", Send{}, false
	}
	s.Content = frame[start:p.i:p.i]
	if !p.lit("}}") || p.i != len(frame) {
		return "", Send{}, false
	}
	return id, s, true
}

type frameParser struct {
	b []byte
	i int
}

// lit consumes lit if the input continues with it.
func (p *frameParser) lit(lit string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		return false
	}
	p.i += len(lit)
	return true
}

// str consumes a JSON string of printable ASCII without escapes, as ids and
// content types are.
func (p *frameParser) str() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := string(p.b[p.i+1 : j])
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

// skipValue consumes one JSON value, finding its end by its brackets and
// strings; whether it is valid JSON is for the message service to say
// later.
func (p *frameParser) skipValue() bool {
	start, depth := p.i, 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			for p.i++; p.i < len(p.b) && p.b[p.i] != '"'; p.i++ {
				if p.b[p.i] == '\\' {
					p.i++
				}
			}
			if p.i >= len(p.b) {
				return false
			}
			p.i++
			if depth == 0 {
				return true
			}
			continue
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return p.i > start // the end of a scalar
			}
			if depth--; depth == 0 {
				p.i++
				return true
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			return p.i > start
		}
		p.i++
	}
	return false
}

// maxDepth is how deeply validValue follows nested objects and arrays;
// deeper content goes to encoding/json.
const maxDepth = 64

// validValue consumes one JSON value in compact form (no whitespace between
// tokens, as the server stores content) and reports whether it is valid
// JSON, as encoding/json would judge it. It reports false for anything it
// does not take, valid or not: whitespace, nesting deeper than maxDepth.
func (p *frameParser) validValue(depth int) bool {
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.validString()
	case c == '{' || c == '[':
		if depth == maxDepth {
			return false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		if p.i < len(p.b) && p.b[p.i] == end {
			p.i++
			return true
		}
		for {
			if c == '{' && !(p.validString() && p.lit(":")) {
				return false
			}
			if !p.validValue(depth + 1) {
				return false
			}
			if p.i >= len(p.b) {
				return false
			}
			switch p.b[p.i] {
			case ',':
				p.i++
			case end:
				p.i++
				return true
			default:
				return false
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		return p.validNumber()
	default:
		return p.lit("true") || p.lit("false") || p.lit("null")
	}
}

// IsCompactJSON reports whether b is one valid JSON value in compact form
// (no whitespace between tokens), which json.Compact would leave as it is:
// the usual content, as encoding/json writes it, checked in one fast pass.
// It reports false for anything else, valid or not, including nesting
// deeper than 64.
func IsCompactJSON(b []byte) bool {
	p := frameParser{b: b}
	return p.validValue(0) && p.i == len(b)
}

// validString consumes a JSON string, escapes included.
func (p *frameParser) validString() bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(p.b) {
				return false
			}
			switch p.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(p.b) {
					return false
				}
				for _, h := range p.b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

// validNumber consumes a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *frameParser) validNumber() bool {
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	digits := func() int {
		start := j
		for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
			j++
		}
		return j - start
	}
	switch {
	case j < len(p.b) && p.b[j] == '0':
		j++
	case digits() == 0:
		return false
	}
	if j < len(p.b) && p.b[j] == '.' {
		j++
		if digits() == 0 {
			return false
		}
	}
	if j < len(p.b) && (p.b[j] == 'e' || p.b[j] == 'E') {
		j++
		if j < len(p.b) && (p.b[j] == '+' || p.b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return false
		}
	}
	p.i = j
	return true
}

// int consumes a JSON integer of at most 18 digits.
func (p *frameParser) int() (int64, bool) {
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	start := j
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' && j-start < 19 {
		j++
	}
	if j == start || j-start > 18 || p.b[start] == '0' && j-start > 1 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return v, true
}

// ParseAckFrame reads an ack frame as AppendAckFrame writes it.
func ParseAckFrame(frame []byte) (id string, a Ack, ok bool) {
	p := frameParser{b: frame}
	if !p.lit(`{"type":"ack","id":`) {
		return "", Ack{}, false
	}
	if id, ok = p.str(); !ok || !p.lit(`,"data":{"cid":`) {
		return "", Ack{}, false
	}
	if a.ClientID, ok = p.str(); !ok || !p.lit(`,"conv":`) {
		return "", Ack{}, false
	}
	if a.Conversation, ok = p.str(); !ok || !p.lit(`,"seq":`) {
		return "", Ack{}, false
	}
	if a.Seq, ok = p.int(); !ok || !p.lit(`,"sid":`) {
		return "", Ack{}, false
	}
	if a.ServerID, ok = p.str(); !ok || !p.lit(`,"ts":`) {
		return "", Ack{}, false
	}
	if a.Time, ok = p.int(); !ok {
		return "", Ack{}, false
	}
	a.Duplicate = p.lit(`,"dup":true`)
	if !p.lit("}}") || p.i != len(frame) {
		return "", Ack{}, false
	}
	return id, a, true
}

// ParseMessagePush reads a message push as AppendMessagePush writes it.
// Unlike a send frame's, the content is checked to be valid JSON, as
// encoding/json would, in the same pass that finds its end: it goes to the
// application as it is. Content is a copy.
func ParseMessagePush(frame []byte) (m Message, ok bool) {
	p := frameParser{b: frame}
	if !p.lit(`{"type":"message","data":{"conv":`) {
		return Message{}, false
	}
	if m.Conversation, ok = p.str(); !ok || !p.lit(`,"seq":`) {
		return Message{}, false
	}
	if m.Seq, ok = p.int(); !ok || !p.lit(`,"sid":`) {
		return Message{}, false
	}
	if m.ServerID, ok = p.str(); !ok || !p.lit(`,"cid":`) {
		return Message{}, false
	}
	if m.ClientID, ok = p.str(); !ok || !p.lit(`,"from":`) {
		return Message{}, false
	}
	if m.From, ok = p.str(); !ok {
		return Message{}, false
	}
	if p.lit(`,"to":`) {
		if m.To, ok = p.str(); !ok {
			return Message{}, false
		}
	}
	if !p.lit(`,"ctype":`) {
		return Message{}, false
	}
	if m.ContentType, ok = p.str(); !ok || !p.lit(`,"content":`) {
		return Message{}, false
	}
	start := p.i
	if !p.validValue(0) {
		return Message{}, false
	}
	content := frame[start:p.i]
	if !p.lit(`,"ts":`) {
		return Message{}, false
	}
	if m.Time, ok = p.int(); !ok || !p.lit("}}") || p.i != len(frame) {
		return Message{}, false
	}
	if string(content) != "null" {
		m.Content = bytes.Clone(content)
	}
	return m, true
}
