package protocol

import (
	"encoding/json"
	"testing"
)

func TestAppendMessagePushMatchesMarshal(t *testing.T) {
	for _, m := range []Message{
		{Conversation: "d:alice:bob", Seq: 1, ServerID: "06h05iu871a1a0stgk000001", ClientID: "m-5f1c", From: "alice", To: "bob",
			ContentType: "text", Content: json.RawMessage(`{"text":"hello","n":1.50}`), Time: 1795343239224},
		{Conversation: "g:team", Seq: 1 << 40, ServerID: "s", ClientID: `a"b\c<d>&e`, From: "x", ContentType: "app.card/v2",
			Content: json.RawMessage(`"ünïcödé \u2028"`), Time: -1},
		{Conversation: "g:t", ClientID: "é", From: "y", ContentType: "t", Content: json.RawMessage(`[1,2,{"a":null}]`)},
	} {
		want, err := Marshal(struct {
			Type string  `json:"type"`
			Data Message `json:"data"`
		}{TypeMessage, m})
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendMessagePush(nil, &m); string(got) != string(want) {
			t.Errorf("AppendMessagePush:\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendMessagePush(f *testing.F) {
	f.Add("d:a:b", "cid", "alice", "bob", "text", `{"t":1}`)
	f.Fuzz(func(t *testing.T, conv, cid, from, to, ctype, content string) {
		if !json.Valid([]byte(content)) {
			return
		}
		var compact []byte
		if c, err := Marshal(json.RawMessage(content)); err == nil {
			compact = c
		}
		m := Message{Conversation: conv, ClientID: cid, From: from, To: to, ContentType: ctype, Content: compact, Seq: 7, Time: 9}
		want, _ := Marshal(struct {
			Type string  `json:"type"`
			Data Message `json:"data"`
		}{TypeMessage, m})
		if got := AppendMessagePush(nil, &m); string(got) != string(want) {
			t.Errorf("got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAppendMessagePush(b *testing.B) {
	m := Message{Conversation: "d:alice:bob", Seq: 12345, ServerID: "0123456789abcdefghijklmn", ClientID: "c-123456",
		From: "alice", To: "bob", ContentType: "text", Content: json.RawMessage(`{"text":"hello there, how are you today?"}`), Time: 1795343239224}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = AppendMessagePush(buf[:0], &m)
	}
}
