package protocol

import (
	"encoding/json"
	"reflect"
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
