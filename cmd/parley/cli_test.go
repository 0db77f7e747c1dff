package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/parleytest"
	"github.com/parleyim/parley/protocol"
)

// parley runs the command line in-process and returns its exit status and
// outputs.
func parley(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// cliServer starts a test server and points the operator commands at it.
func cliServer(t *testing.T) *parleytest.Server {
	s := parleytest.NewServer(t, nil)
	t.Setenv("PARLEY_URL", s.URL)
	t.Setenv("PARLEY_ADMIN_KEY", parleytest.AdminKey)
	return s
}

func TestFlagsAfterThePositionalArgument(t *testing.T) {
	s := cliServer(t)
	s.User(t, "alice", "web", "w1")
	code, out, errOut := parley(t, "token", "alice", "--platform", "ios", "--device", "iphone-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var tok protocol.Token
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		t.Fatal(err)
	}
	_, hello := parleytest.Dial(t, s.WSURL, tok.Token)
	if hello.Platform != "ios" || hello.Device != "iphone-1" {
		t.Fatalf("token for %s/%s, want ios/iphone-1", hello.Platform, hello.Device)
	}
	code, out, errOut = parley(t, "token", "alice", "--device", "laptop", "--token-only")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, hello = parleytest.Dial(t, s.WSURL, strings.TrimSuffix(out, "\n")); hello.Device != "laptop" {
		t.Fatalf("--token-only printed %q", out)
	}
}

func TestHelp(t *testing.T) {
	t.Setenv("PARLEY_ADMIN_KEY", "very-secret-key")
	t.Setenv("PARLEY_URL", "")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"help serve", []string{"help", "serve"}, []string{"Usage: parley serve", "(env PARLEY_LISTEN)", "(env PARLEY_SHUTDOWN_DRAIN)", "Examples:", "set by environment PARLEY_ADMIN_KEY"}},
		{"serve --help", []string{"serve", "--help"}, []string{"Usage: parley serve"}},
		{"user --help", []string{"user", "--help"}, []string{"create ", "get ID", "list ", "update ID", "change a user's profile", "Examples:"}},
		{"help user", []string{"help", "user"}, []string{"update ID"}},
		{"help token", []string{"help", "token"}, []string{"Usage: parley token [flags] USER", "(default: $PARLEY_ADMIN_KEY (set))"}},
		{"help", []string{"help"}, []string{"parley messages", "parley user update ID"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := parley(t, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "very-secret-key") {
				t.Errorf("help shows the admin key:\n%s", out)
			}
		})
	}
	for _, c := range adminCmds {
		t.Run(c.name+" --help", func(t *testing.T) {
			code, out, _ := parley(t, append(strings.Fields(c.name), "--help")...)
			if code != 0 || !strings.Contains(out, "Example:\n  parley "+c.name) {
				t.Fatalf("exit %d, no example:\n%s", code, out)
			}
			if strings.Contains(out, "very-secret-key") || !strings.Contains(out, "$PARLEY_ADMIN_KEY") {
				t.Fatalf("admin key default is not its source:\n%s", out)
			}
		})
	}
}

func TestBadCommandLinesFailOnce(t *testing.T) {
	t.Setenv("PARLEY_ADMIN_KEY", "k")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"token", "alice", "--nope"}, "flag provided but not defined: -nope"},
		{"serve unknown flag", []string{"serve", "--nope"}, "flag provided but not defined: -nope"},
		{"missing argument", []string{"token"}, "want USER"},
		{"extra argument", []string{"user", "get", "a", "b"}, "want ID"},
		{"unknown subcommand", []string{"user", "remove", "a"}, `unknown command "user remove"`},
		{"update without changes", []string{"user", "update", "alice"}, "nothing to change"},
		{"messages without user", []string{"messages", "--with", "bob"}, "--user is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := parley(t, tc.args...)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			if strings.Count(errOut, tc.want) != 1 {
				t.Fatalf("stderr should say %q once:\n%s", tc.want, errOut)
			}
		})
	}
}

func TestUserUpdateAndReadingAConversation(t *testing.T) {
	s := cliServer(t)
	s.User(t, "alice", "web", "w1")
	s.User(t, "bob", "web", "w1")
	code, out, errOut := parley(t, "user", "update", "alice", "--nickname", "Alice L.")
	if code != 0 {
		t.Fatalf("update: exit %d: %s", code, errOut)
	}
	var u protocol.User
	if err := json.Unmarshal([]byte(out), &u); err != nil || u.Nickname != "Alice L." {
		t.Fatalf("update printed %s (%v)", out, err)
	}
	for _, text := range []string{"one", "two"} {
		if _, err := s.Admin.Send(t.Context(), admin.Message{From: "alice", To: "bob", ContentType: "text", Content: json.RawMessage(`{"text":"` + text + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"messages", "--user", "bob", "--with", "alice"},
		{"messages", "--user", "alice", "--conv", "d:alice:bob"},
	} {
		code, out, errOut = parley(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		var page protocol.Messages
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatal(err)
		}
		var second bytes.Buffer
		if len(page.Messages) == 2 {
			json.Compact(&second, page.Messages[1].Content)
		}
		if len(page.Messages) != 2 || page.Messages[1].Seq != 2 || second.String() != `{"text":"two"}` {
			t.Fatalf("%v: page %+v", args, page)
		}
	}
	code, out, errOut = parley(t, "conversations", "--user", "bob")
	if code != 0 || !strings.Contains(out, `"d:alice:bob"`) {
		t.Fatalf("conversations: exit %d: %s %s", code, out, errOut)
	}
}

// TestServeRefusesAUsedDataDirAndReportsBindErrors runs the binary: a
// second server on one data directory is refused, and a failed bind is
// reported as such.
func TestServeRefusesAUsedDataDirAndReportsBindErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "parley")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	data := filepath.Join(dir, "data")
	first := exec.Command(bin, "serve", "--listen", addr, "--data-dir", data, "--admin-key", "k")
	first.Stdout, first.Stderr = os.Stderr, os.Stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { first.Process.Kill(); first.Wait() }()
	waitReady(t, "http://"+addr)

	for _, tc := range []struct {
		name, listen, data, want string
	}{
		{"same data dir", freeAddr(t), data, "another parley process serves " + data},
		{"address in use", addr, filepath.Join(dir, "other"), "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, "serve", "--listen", tc.listen, "--data-dir", tc.data, "--admin-key", "k").CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("second serve: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "<nil>") {
				t.Fatalf("output should say %q and no <nil>:\n%s", tc.want, out)
			}
		})
	}
}

func TestGroupsAndBackupFromTheCommandLine(t *testing.T) {
	s := cliServer(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		s.User(t, u, "web", "w1")
	}
	ok := func(args ...string) string {
		t.Helper()
		code, out, errOut := parley(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := ok("group", "create", "team", "--owner", "alice", "--name", "Team", "--members", "bob"); !strings.Contains(out, `"owner": "alice"`) || !strings.Contains(out, `"name": "Team"`) {
		t.Errorf("group create printed %s", out)
	}
	ok("group", "add", "team", "--users", "carol")
	if out := ok("group", "members", "team"); !strings.Contains(out, "carol") {
		t.Errorf("group members printed %s", out)
	}
	ok("send", "--from", "alice", "--conv", "g:team", "--content", `{"text":"hi team"}`)
	ok("group", "remove", "team", "bob")
	if out := ok("group", "members", "team"); strings.Contains(out, "bob") {
		t.Errorf("bob still listed after removal: %s", out)
	}
	if out := ok("group", "rename", "team", "The team"); !strings.Contains(out, `"name": "The team"`) {
		t.Errorf("group rename printed %s", out)
	}
	ok("group", "dismiss", "team")
	if out := ok("messages", "--user", "alice", "--conv", "g:team"); !strings.Contains(out, `"event": "dismissed"`) {
		t.Errorf("the group's history does not end with its dismissal: %s", out)
	}
	if code, _, errOut := parley(t, "send", "--to", "bob", "--conv", "g:team", "--content", `{}`); code == 0 || !strings.Contains(errOut, "one of --to and --conv") {
		t.Errorf("send with --to and --conv: exit %d: %s", code, errOut)
	}
	dir := filepath.Join(t.TempDir(), "backup")
	ok("backup", dir)
	if _, err := os.Stat(filepath.Join(dir, "messages")); err != nil {
		t.Errorf("backup has no message log: %v", err)
	}
	if code, _, errOut := parley(t, "backup", dir); code == 0 || !strings.Contains(errOut, "already_exists") {
		t.Errorf("backup into an existing directory: exit %d: %s", code, errOut)
	}
}

func TestUserDeactivateAndSessions(t *testing.T) {
	s := cliServer(t)
	tok := s.User(t, "mallory", "web", "w1")
	conn, _ := parleytest.Dial(t, s.WSURL, tok)
	defer conn.Close()
	code, out, errOut := parley(t, "user", "sessions", "mallory")
	if code != 0 || !strings.Contains(out, `"w1"`) {
		t.Fatalf("user sessions: exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut = parley(t, "user", "deactivate", "mallory")
	if code != 0 || !strings.Contains(out, `"kicked": 1`) {
		t.Fatalf("user deactivate: exit %d: %s %s", code, out, errOut)
	}
	if code, _, errOut := parley(t, "token", "mallory"); code == 0 || !strings.Contains(errOut, "user_deactivated") {
		t.Errorf("token for a deactivated user: exit %d: %s", code, errOut)
	}
}
