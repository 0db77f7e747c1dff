package server_test

import (
	"bytes"
	"flag"

	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parleyim/parley/server"
)

func loadConfig(t *testing.T, args, environ []string) (server.Config, string, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	cfg, err := server.LoadConfig(fs, args, environ)
	fs.PrintDefaults()
	return cfg, help.String(), err
}

func TestBadYAMLKeyIsNamedWithItsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.yaml")
	if err := os.WriteFile(path, []byte("listen: \":8080\"\nlisen_addr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := loadConfig(t, []string{"--config", path}, nil)
	if err == nil {
		t.Fatal("no error for an unknown key")
	}
	msg := err.Error()
	for _, want := range []string{path, "line 2", `unknown key "lisen_addr"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "server.Config") {
		t.Errorf("error %q shows a Go type", msg)
	}
}

func TestEmptyYAMLFileIsAccepted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadConfig(t, []string{"--config", path}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestEveryFlagNamesItsVariable checks that each setting has a flag named
// after its YAML key whose usage names its environment variable.
func TestEveryFlagNamesItsVariable(t *testing.T) {
	_, help, err := loadConfig(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[server.Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		key, env := f.Tag.Get("yaml"), f.Tag.Get("env")
		if key == "-" {
			continue
		}
		if env != strings.ToUpper(key) {
			t.Errorf("%s: env tag %q, want %q", f.Name, env, strings.ToUpper(key))
		}
		flagName := strings.ReplaceAll(key, "_", "-")
		if !strings.Contains(help, "-"+flagName+" ") && !strings.Contains(help, "-"+flagName+"\n") {
			t.Errorf("no flag --%s", flagName)
		}
		if !strings.Contains(help, "(env PARLEY_"+env+")") {
			t.Errorf("help does not name PARLEY_%s", env)
		}
	}
}

func TestAdminKeySource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "parley.yaml")
	if err := os.WriteFile(file, []byte("admin_key: from-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		from    string
	}{
		{"none", nil, nil, ""},
		{"file", []string{"--config", file}, nil, "file " + file},
		{"environment", []string{"--config", file}, []string{"PARLEY_ADMIN_KEY=from-env-secret"}, "environment PARLEY_ADMIN_KEY"},
		{"flag", []string{"--admin-key", "from-flag-secret"}, []string{"PARLEY_ADMIN_KEY=from-env-secret"}, "flag --admin-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, help, err := loadConfig(t, tc.args, tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AdminKeyFrom != tc.from {
				t.Fatalf("AdminKeyFrom = %q, want %q", cfg.AdminKeyFrom, tc.from)
			}
			if strings.Contains(help, "secret") {
				t.Fatalf("help shows the key:\n%s", help)
			}
		})
	}
}

// TestFriendPolicies checks that the friend policies are off by default
// and come from the YAML file, the environment and flags.
func TestFriendPolicies(t *testing.T) {
	cfg, help, err := loadConfig(t, nil, nil)
	if err != nil || cfg.FriendRequired || cfg.FriendAutoAccept {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	for _, want := range []string{"PARLEY_FRIEND_REQUIRED", "PARLEY_FRIEND_AUTO_ACCEPT"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %s", want)
		}
	}
	path := filepath.Join(t.TempDir(), "parley.yaml")
	if err := os.WriteFile(path, []byte("friend_required: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err = loadConfig(t, []string{"--config", path}, []string{"PARLEY_FRIEND_AUTO_ACCEPT=true"})
	if err != nil || !cfg.FriendRequired || !cfg.FriendAutoAccept {
		t.Fatalf("from YAML and environment: %+v, %v", cfg, err)
	}
	cfg, _, err = loadConfig(t, []string{"--config", path, "--friend-required=false"}, nil)
	if err != nil || cfg.FriendRequired {
		t.Fatalf("a flag over YAML: %+v, %v", cfg, err)
	}
}
