package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeSendFrame is the general path: encoding/json.
func decodeSendFrame(frame []byte) (id string, s Send, ok bool) {
	var f struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data *Send  `json:"data"`
	}
	if json.Unmarshal(frame, &f) != nil || f.Type != TypeSend || f.Data == nil {
		return "", Send{}, false
	}
	return f.ID, *f.Data, true
}

var sendFrames = []string{
	`{"type":"send","id":"7","data":{"cid":"c1","to":"bob","ctype":"text","content":{"text":"hi"}}}`,
	`{"type":"send","id":"8","data":{"cid":"c2","conv":"g:team","ctype":"text","content":{"text":"a \"quoted\" } brace","n":[1,{"x":"]"}]}}}`,
	`{"type":"send","id":"9","data":{"cid":"c3","to":"bob","ctype":"n","content":42}}`,
	`{"type":"send","id":"10","data":{"cid":"c4","to":"bob","ctype":"s","content":"just a string"}}`,
	`{"type":"send","id":"11","data":{"cid":"c5","to":"bob","ctype":"t","content":true}}`,
	`{"type":"send","id":"12","data":{"cid":"c6","to":"bob","ctype":"t","content":[]}}`,
	`{"type":"send","id":"13","data":{"cid":"c7","to":"bob","ctype":"t","content":{"e":"\u00e9\\ é 😀"}}}`,
}

// TestParseSendFrame checks the fast path against encoding/json on frames
// it takes.
func TestParseSendFrame(t *testing.T) {
	for _, f := range sendFrames {
		id, s, ok := ParseSendFrame([]byte(f))
		wantID, want, wantOK := decodeSendFrame([]byte(f))
		if !ok || !wantOK || id != wantID || !sameSend(s, want) {
			t.Errorf("%s:\n fast %q %+v %v\n json %q %+v %v", f, id, s, ok, wantID, want, wantOK)
		}
	}
}

// TestParseSendFrameLeavesTheRest checks that anything but the SDKs' exact
// shape goes to the general path.
func TestParseSendFrameLeavesTheRest(t *testing.T) {
	for _, f := range []string{
		`{"type":"send","id":"7","data":{"to":"bob","cid":"c1","ctype":"text","content":{}}}`,       // another order
		`{"type":"send", "id":"7","data":{"cid":"c1","to":"bob","ctype":"text","content":{}}}`,      // whitespace
		`{"type":"send","id":"7","data":{"cid":"c\u0031","to":"bob","ctype":"text","content":{}}}`,  // an escape
		`{"type":"send","id":"7","data":{"cid":"c1","to":"bob","ctype":"text","content":{}},"x":1}`, // more after
		`{"type":"send","id":"7","data":{"cid":"c1","to":"bob","ctype":"text","content":{"a":"}}`,   // unterminated
		`{"type":"send","id":"7","data":{"cid":"c1","to":"bob","ctype":"text","content":}}`,         // no value
		`{"type":"send","id":"7","data":{"cid":"c1","to":"bob","conv":"g:x","ctype":"t","content":1}}`,
		`{"type":"send","id":7,"data":{"cid":"c1","to":"bob","ctype":"text","content":{}}}`,
		`{"type":"pull","id":"7","data":{}}`,
		`{"type":"send","id":"7","data":{"cid":"héllo","to":"bob","ctype":"text","content":{}}}`, // not ASCII
	} {
		if _, _, ok := ParseSendFrame([]byte(f)); ok {
			t.Errorf("took %s", f)
		}
	}
}

// FuzzParseSendFrame checks that whatever the fast path takes, encoding/json
// reads the same way; where encoding/json refuses the frame, the content the
// fast path found must be invalid JSON, which the message service refuses.
func FuzzParseSendFrame(f *testing.F) {
	for _, s := range sendFrames {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		id, s, ok := ParseSendFrame(frame)
		if !ok {
			return
		}
		wantID, want, wantOK := decodeSendFrame(frame)
		if !wantOK {
			if json.Valid(s.Content) {
				t.Fatalf("fast path took %q, encoding/json refuses it, content %q is valid", frame, s.Content)
			}
			return
		}
		if id != wantID || !sameSend(s, want) {
			t.Fatalf("%q:\n fast %q %+v\n json %q %+v", frame, id, s, wantID, want)
		}
	})
}

func sameSend(a, b Send) bool {
	ac, bc := a.Content, b.Content
	a.Content, b.Content = nil, nil
	return reflect.DeepEqual(a, b) && string(ac) == string(bc)
}

// BenchmarkParseSendFrame compares the fast path with encoding/json on a
// typical send frame.
func BenchmarkParseSendFrame(b *testing.B) {
	frame := []byte(`{"type":"send","id":"1234","data":{"cid":"lg-1-1234","to":"user-000042","ctype":"text","content":{"text":"hello, this is a message of about the usual length","n":12}}}`)
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			ParseSendFrame(frame)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for range b.N {
			decodeSendFrame(frame)
		}
	})
}

// TestAckAndMessageFramesRoundTrip checks the hand-written ack encoder
// against Marshal, and both parsers against what was encoded.
func TestAckAndMessageFramesRoundTrip(t *testing.T) {
	for _, a := range []Ack{
		{ClientID: "c1", Conversation: "d:alice:bob", Seq: 42, ServerID: "06h1s", Time: 1795343239224},
		{ClientID: "c2", Conversation: "g:team", Seq: 1, ServerID: "x", Time: 1, Duplicate: true},
	} {
		frame := AppendAckFrame(nil, "17", &a)
		want, _ := Marshal(struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Data Ack    `json:"data"`
		}{TypeAck, "17", a})
		if string(frame) != string(want) {
			t.Errorf("AppendAckFrame = %s, Marshal = %s", frame, want)
		}
		id, got, ok := ParseAckFrame(frame)
		if !ok || id != "17" || got != a {
			t.Errorf("ParseAckFrame(%s) = %q %+v %v", frame, id, got, ok)
		}
	}
	for _, m := range []Message{
		{Conversation: "d:alice:bob", Seq: 3, ServerID: "s", ClientID: "c", From: "alice", To: "bob", ContentType: "text", Content: json.RawMessage(`{"text":"hé \"}\" 😀"}`), Time: 1795343239224},
		{Conversation: "g:team", Seq: 9, ServerID: "s", ClientID: "c", From: "system", ContentType: "group.event", Content: json.RawMessage(`[1,2,{"a":null}]`), Time: 5},
		{Conversation: "g:team", Seq: 10, ServerID: "s", ClientID: "c", From: "bob", ContentType: "n", Content: json.RawMessage(`-12.5e3`), Time: 5},
	} {
		frame := AppendMessagePush(nil, &m)
		got, ok := ParseMessagePush(frame)
		if !ok || !reflect.DeepEqual(got, m) {
			t.Errorf("ParseMessagePush(%s) = %+v %v", frame, got, ok)
		}
	}
	if _, ok := ParseMessagePush([]byte(`{"type":"message","data":{"conv":"g:x","seq":1,"sid":"s","cid":"c","from":"a","ctype":"t","content":{"a":},"ts":1}}`)); ok {
		t.Error("ParseMessagePush took invalid content")
	}
	if _, _, ok := ParseAckFrame([]byte(`{"type":"ack","id":"1","data":{"cid":"c","conv":"d:a:b","seq":01,"sid":"s","ts":1}}`)); ok {
		t.Error("ParseAckFrame took a leading zero")
	}
}

// FuzzParseAckFrame holds ParseAckFrame to encoding/json's reading.
func FuzzParseAckFrame(f *testing.F) {
	a := Ack{ClientID: "c1", Conversation: "d:alice:bob", Seq: 42, ServerID: "06h1s", Time: 1795343239224, Duplicate: true}
	f.Add(AppendAckFrame(nil, "17", &a))
	f.Fuzz(func(t *testing.T, frame []byte) {
		id, got, ok := ParseAckFrame(frame)
		if !ok {
			return
		}
		var want struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Data Ack    `json:"data"`
		}
		if err := json.Unmarshal(frame, &want); err != nil || want.Type != TypeAck || want.ID != id || want.Data != got {
			t.Fatalf("%q: fast %q %+v; json %+v %v", frame, id, got, want, err)
		}
	})
}

// FuzzParseMessagePush holds ParseMessagePush to encoding/json's reading.
// validContents are compact JSON values the message-push parser takes
// itself, content validation included.
var validContents = []string{
	`{"text":"hi"}`, `null`, `0`, `-12.5e+3`, `"x"`, `[]`, `{}`, `true`,
	`{"a":[1,-0.25,1E9,true,false,null,"q\"\\\/\b\f\n\r\t\u00e9é"],"b":{"c":{}}}`,
}

// TestParseMessagePushValidatesContent checks that the parser takes valid
// content itself, so pushes stay on the fast path, and refuses content
// encoding/json would refuse.
func TestParseMessagePushValidatesContent(t *testing.T) {
	m := Message{Conversation: "g:x", Seq: 1, ServerID: "s", ClientID: "c", From: "a", ContentType: "text", Time: 1}
	for _, c := range validContents {
		m.Content = json.RawMessage(c)
		if _, ok := ParseMessagePush(AppendMessagePush(nil, &m)); !ok {
			t.Errorf("content %s: not taken", c)
		}
	}
	for _, c := range []string{`{"a":1,}`, `[1 2]`, `01`, `-`, `1.`, `1e`, `"\x"`, `"\u12"`, "\"\x01\"", `tru`, `{"a"}`, `{1:2}`, `[`, `nul`} {
		m.Content = json.RawMessage(c)
		if _, ok := ParseMessagePush(AppendMessagePush(nil, &m)); ok {
			t.Errorf("content %s: taken, though not JSON", c)
		}
	}
}

func TestIsCompactJSON(t *testing.T) {
	for _, c := range validContents {
		if !IsCompactJSON([]byte(c)) {
			t.Errorf("%s: not taken", c)
		}
	}
	for _, c := range []string{``, ` 1`, `1 `, `{"a": 1}`, `[1, 2]`, `1 2`, `{"a":1}x`, `{"a":1,}`, `01`, `"\x"`, `{"a"}`, `[`,
		strings.Repeat("[", 65) + strings.Repeat("]", 65)} {
		if IsCompactJSON([]byte(c)) {
			t.Errorf("%q: taken", c)
		}
	}
}

// FuzzIsCompactJSON holds IsCompactJSON to encoding/json: what it takes is
// valid, and json.Compact leaves it as it is.
func FuzzIsCompactJSON(f *testing.F) {
	for _, c := range validContents {
		f.Add([]byte(c))
	}
	f.Add([]byte(`{"a": [1, "x"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !IsCompactJSON(b) {
			return
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			t.Fatalf("%q: taken, but encoding/json refuses it: %v", b, err)
		}
		if !bytes.Equal(compact.Bytes(), b) {
			t.Fatalf("%q: taken, but its compact form is %q", b, compact.Bytes())
		}
	})
}

func FuzzParseMessagePush(f *testing.F) {
	m := Message{Conversation: "d:alice:bob", Seq: 3, ServerID: "s", ClientID: "c", From: "alice", To: "bob", ContentType: "text", Content: json.RawMessage(`{"text":"hi"}`), Time: 1}
	f.Add(AppendMessagePush(nil, &m))
	for _, c := range validContents {
		m.Content = json.RawMessage(c)
		f.Add(AppendMessagePush(nil, &m))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		got, ok := ParseMessagePush(frame)
		if !ok {
			return
		}
		var want struct {
			Type string  `json:"type"`
			Data Message `json:"data"`
		}
		if err := json.Unmarshal(frame, &want); err != nil || want.Type != TypeMessage {
			t.Fatalf("%q: fast path took what encoding/json refuses: %v", frame, err)
		}
		if string(want.Data.Content) == "null" {
			want.Data.Content = nil
		}
		if !reflect.DeepEqual(got, want.Data) {
			t.Fatalf("%q:\n fast %+v\n json %+v", frame, got, want.Data)
		}
	})
}

// BenchmarkParseAckAndMessage compares the SDK's fast paths with
// encoding/json.
func BenchmarkParseAckAndMessage(b *testing.B) {
	a := Ack{ClientID: "lg-1-1234", Conversation: "d:user-000042:user-000043", Seq: 123456, ServerID: "06h1s2fn15e423o2dc000005", Time: 1795343239224}
	ack := AppendAckFrame(nil, "1234", &a)
	m := Message{Conversation: a.Conversation, Seq: a.Seq, ServerID: a.ServerID, ClientID: a.ClientID, From: "user-000042", To: "user-000043", ContentType: "text",
		Content: json.RawMessage(`{"text":"hello, this is a message of about the usual length","n":12}`), Time: a.Time}
	push := AppendMessagePush(nil, &m)
	b.Run("ack/fast", func(b *testing.B) {
		for range b.N {
			ParseAckFrame(ack)
		}
	})
	b.Run("ack/encoding_json", func(b *testing.B) {
		for range b.N {
			var f struct {
				Type string `json:"type"`
				ID   string `json:"id"`
				Data Ack    `json:"data"`
			}
			json.Unmarshal(ack, &f)
		}
	})
	b.Run("message/fast", func(b *testing.B) {
		for range b.N {
			ParseMessagePush(push)
		}
	})
	b.Run("message/encoding_json", func(b *testing.B) {
		for range b.N {
			var f struct {
				Data Message `json:"data"`
			}
			json.Unmarshal(push, &f)
		}
	})
}
