package protocol

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Marshal encodes v as every server frame and REST body is encoded: as
// json.Marshal does, but without HTML escaping, so that message content,
// stored as compact JSON, goes out exactly as it is stored.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// WriteJSON writes v to w as Marshal encodes it, and a newline.
func WriteJSON(w io.Writer, v any) error { return encoder(w).Encode(v) }

func encoder(w io.Writer) *json.Encoder {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	return e
}

// AppendMessagePush appends the message push frame of m,
// {"type":"message","data":{…}}, to dst: the same bytes as Marshal of the
// frame with m as data, written without reflection because every
// committed message is encoded once on the hot path. m.Content must be
// compact JSON, as the server stores it.
func AppendMessagePush(dst []byte, m *Message) []byte {
	dst = slices.Grow(dst, 112+len(m.Conversation)+len(m.ServerID)+len(m.ClientID)+len(m.From)+len(m.To)+len(m.ContentType)+len(m.Content))
	dst = append(dst, `{"type":"message","data":{"conv":`...)
	dst = AppendString(dst, m.Conversation)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, m.Seq, 10)
	dst = append(dst, `,"sid":`...)
	dst = AppendString(dst, m.ServerID)
	dst = append(dst, `,"cid":`...)
	dst = AppendString(dst, m.ClientID)
	dst = append(dst, `,"from":`...)
	dst = AppendString(dst, m.From)
	if m.To != "" {
		dst = append(dst, `,"to":`...)
		dst = AppendString(dst, m.To)
	}
	dst = append(dst, `,"ctype":`...)
	dst = AppendString(dst, m.ContentType)
	dst = append(dst, `,"content":`...)
	if len(m.Content) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, m.Content...)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, m.Time, 10)
	return append(dst, "}}"...)
}

// AppendAckFrame appends the ack frame answering send request id, as
// Marshal of the frame would write it; ParseAckFrame reads it back.
func AppendAckFrame(dst []byte, id string, a *Ack) []byte {
	dst = slices.Grow(dst, 96+len(id)+len(a.ClientID)+len(a.Conversation)+len(a.ServerID))
	dst = append(dst, `{"type":"ack","id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, `,"data":{"cid":`...)
	dst = AppendString(dst, a.ClientID)
	dst = append(dst, `,"conv":`...)
	dst = AppendString(dst, a.Conversation)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, a.Seq, 10)
	dst = append(dst, `,"sid":`...)
	dst = AppendString(dst, a.ServerID)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, a.Time, 10)
	if a.Duplicate {
		dst = append(dst, `,"dup":true`...)
	}
	return append(dst, "}}"...)
}

// AppendString appends s as a JSON string, as Marshal writes it. Encoders
// written by hand for hot frames (the message push here, the SDK's send)
// use it for their strings.
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
