package protocol

import "bytes"

// ParseSendFrame decodes a send frame written the way both SDKs write it,
// field for field:
//
//	{"type":"send","id":"7","data":{"cid":"c1","to":"bob","ctype":"text","content":{…}}}
//
// ("conv" may stand for "to"), with ids and content type in plain ASCII. It is the
// server's hot path: encoding/json spends about 4 µs on such a frame, this
// well under one. Anything else, however valid, reports ok false and is
// left to encoding/json, which also words the errors. The content's bytes
// are checked only for their extent: the message service validates and
// compacts content (json.Compact) before it goes anywhere. Content aliases
// frame.
func ParseSendFrame(frame []byte) (id string, s Send, ok bool) {
	p := sendParser{b: frame}
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

type sendParser struct {
	b []byte
	i int
}

// lit consumes lit if the input continues with it.
func (p *sendParser) lit(lit string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		return false
	}
	p.i += len(lit)
	return true
}

// str consumes a JSON string of printable ASCII without escapes, as ids and
// content types are.
func (p *sendParser) str() (string, bool) {
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
// strings; whether it is valid JSON is for json.Compact to say later.
func (p *sendParser) skipValue() bool {
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
