package server

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"

	"github.com/parleyim/parley/gateway"
)

// Config is every setting of a Parley server. Each field can be set in the
// YAML file (key in the yaml tag), by an environment variable (PARLEY_ and
// the env tag) and by a flag (the yaml key with '_' as '-'), in rising order
// of precedence. Defaults() holds the defaults; docs/operations.md lists them.
type Config struct {
	Listen string `yaml:"listen" env:"LISTEN"`
	// AdminAddr, when set, is a second address serving /metrics and the
	// profiler, which then leave Listen; empty serves them on Listen.
	AdminAddr string `yaml:"admin_addr" env:"ADMIN_ADDR"`
	DataDir   string `yaml:"data_dir" env:"DATA_DIR"`
	// StoreSync is "full" (a commit survives power loss) or "normal" (a
	// commit survives a process crash; the last commits may be lost on
	// power loss).
	StoreSync string `yaml:"store_sync" env:"STORE_SYNC"`

	AdminKey string `yaml:"admin_key" env:"ADMIN_KEY"`
	// AdminKeyFrom says where AdminKey came from, for the log and help
	// text: "flag --admin-key", "environment PARLEY_ADMIN_KEY" or
	// "file NAME". LoadConfig sets it; it is never read from a file.
	AdminKeyFrom      string        `yaml:"-"`
	TokenTTL          time.Duration `yaml:"token_ttl" env:"TOKEN_TTL"`
	AllowRegistration bool          `yaml:"allow_registration" env:"ALLOW_REGISTRATION"`
	LoginPolicy       string        `yaml:"login_policy" env:"LOGIN_POLICY"`

	Heartbeat       time.Duration `yaml:"heartbeat" env:"HEARTBEAT"`
	IdleTimeout     time.Duration `yaml:"idle_timeout" env:"IDLE_TIMEOUT"`
	MaxFrameBytes   int           `yaml:"max_frame_bytes" env:"MAX_FRAME_BYTES"`
	MaxContentBytes int           `yaml:"max_content_bytes" env:"MAX_CONTENT_BYTES"`
	QueueFrames     int           `yaml:"queue_frames" env:"QUEUE_FRAMES"`
	QueueBytes      int           `yaml:"queue_bytes" env:"QUEUE_BYTES"`
	CommitBatch     int           `yaml:"commit_batch" env:"COMMIT_BATCH"`
	GroupMaxMembers int           `yaml:"group_max_members" env:"GROUP_MAX_MEMBERS"`
	Compression     bool          `yaml:"compression" env:"COMPRESSION"`

	// FriendRequired refuses one-to-one messages between users who are not
	// friends; FriendAutoAccept makes every friend request a friendship at
	// once.
	FriendRequired   bool `yaml:"friend_required" env:"FRIEND_REQUIRED"`
	FriendAutoAccept bool `yaml:"friend_auto_accept" env:"FRIEND_AUTO_ACCEPT"`

	// Pprof serves Go's profiler at /debug/pprof/, for the admin key only.
	Pprof bool `yaml:"pprof" env:"PPROF"`

	// ShutdownDrain is how long /readyz answers 503 before a shutdown
	// stops accepting, while everything is still served, so that load
	// balancers stop sending new clients first.
	ShutdownDrain   time.Duration `yaml:"shutdown_drain" env:"SHUTDOWN_DRAIN"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`
	LogLevel        string        `yaml:"log_level" env:"LOG_LEVEL"`
	LogFormat       string        `yaml:"log_format" env:"LOG_FORMAT"`
}

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		DataDir:         "data",
		StoreSync:       "full",
		TokenTTL:        7 * 24 * time.Hour,
		LoginPolicy:     gateway.PolicyAll,
		Heartbeat:       25 * time.Second,
		IdleTimeout:     60 * time.Second,
		MaxFrameBytes:   64 << 10,
		MaxContentBytes: 32 << 10,
		QueueFrames:     1024,
		QueueBytes:      4 << 20,
		CommitBatch:     512,
		GroupMaxMembers: 10000,
		ShutdownDrain:   5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
	}
}

// Validate reports the first setting that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("config: listen is empty")
	case c.DataDir == "":
		return errors.New("config: data_dir is empty")
	case c.StoreSync != "full" && c.StoreSync != "normal":
		return fmt.Errorf("config: store_sync must be full or normal, not %q", c.StoreSync)
	case !gateway.ValidPolicy(c.LoginPolicy):
		return fmt.Errorf("config: login_policy must be all, platform or class, not %q", c.LoginPolicy)
	case c.TokenTTL < time.Minute:
		return errors.New("config: token_ttl must be at least 1m")
	case c.Heartbeat < 100*time.Millisecond || c.IdleTimeout <= c.Heartbeat:
		return errors.New("config: heartbeat must be at least 100ms and idle_timeout longer than heartbeat")
	case c.MaxFrameBytes < 1024 || c.MaxContentBytes < 1 || c.MaxContentBytes > c.MaxFrameBytes:
		return errors.New("config: max_frame_bytes must be at least 1024 and max_content_bytes between 1 and max_frame_bytes")
	case c.QueueFrames < 16 || c.QueueBytes < c.MaxFrameBytes:
		return errors.New("config: queue_frames must be at least 16 and queue_bytes at least max_frame_bytes")
	case c.CommitBatch < 1 || c.CommitBatch > 10000:
		return errors.New("config: commit_batch must be 1 to 10000")
	case c.GroupMaxMembers < 2 || c.GroupMaxMembers > 1_000_000:
		return errors.New("config: group_max_members must be 2 to 1000000")
	case c.ShutdownDrain < 0 || c.ShutdownTimeout <= 0:
		return errors.New("config: shutdown_drain must not be negative and shutdown_timeout must be positive")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("config: log_format must be text or json, not %q", c.LogFormat)
	}
	return nil
}

// LoadConfig builds the configuration from defaults, then the YAML file named
// by --config or PARLEY_CONFIG, then PARLEY_* variables, then the flags in
// args; environ is os.Environ(). fs receives the flags (so the caller controls
// usage output); each flag's usage names its environment variable, and the
// admin key's default names where the key comes from, never the key.
func LoadConfig(fs *flag.FlagSet, args []string, environ []string) (Config, error) {
	cfg := Defaults()
	envs := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PARLEY_") {
			envs[k] = v
		}
	}
	path := envs["PARLEY_CONFIG"]
	for i, a := range args {
		if v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "config="); ok && strings.HasPrefix(a, "-") {
			path = v
		} else if (a == "--config" || a == "-config") && i+1 < len(args) {
			path = args[i+1]
		}
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, yamlError(path, err)
		}
		if cfg.AdminKey != "" {
			cfg.AdminKeyFrom = "file " + path
		}
	}
	if err := env.ParseWithOptions(&cfg, env.Options{Prefix: "PARLEY_", Environment: envs}); err != nil {
		return cfg, fmt.Errorf("config: environment: %w", err)
	}
	if envs["PARLEY_ADMIN_KEY"] != "" {
		cfg.AdminKeyFrom = "environment PARLEY_ADMIN_KEY"
	}

	fs.String("config", path, withEnv("config", "YAML configuration `file`"))
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, withEnv("listen", "`address` to serve HTTP, WebSocket, health (and metrics unless admin-addr is set) on"))
	fs.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, withEnv("admin-addr", "separate `address` for /metrics and the profiler (empty: serve them on listen)"))
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, withEnv("data-dir", "`directory` for the embedded store"))
	fs.StringVar(&cfg.StoreSync, "store-sync", cfg.StoreSync, withEnv("store-sync", "durability: full (survives power loss) or normal (survives a process crash)"))
	fs.StringVar(&cfg.AdminKey, "admin-key", cfg.AdminKey, withEnv("admin-key", "admin `key`; when none is configured, the key generated on first start and stored in the data directory"))
	// The default shown in help names the key's source, never the key.
	fs.Lookup("admin-key").DefValue = ""
	if cfg.AdminKeyFrom != "" {
		fs.Lookup("admin-key").DefValue = "set by " + cfg.AdminKeyFrom
	}
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, withEnv("token-ttl", "default and maximum token lifetime"))
	fs.BoolVar(&cfg.AllowRegistration, "allow-registration", cfg.AllowRegistration, withEnv("allow-registration", "let users register themselves with a password"))
	fs.StringVar(&cfg.LoginPolicy, "login-policy", cfg.LoginPolicy, withEnv("login-policy", "multi-device policy: all, platform or class"))
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", cfg.Heartbeat, withEnv("heartbeat", "interval at which clients should ping"))
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, withEnv("idle-timeout", "close connections silent for this long"))
	fs.IntVar(&cfg.MaxFrameBytes, "max-frame-bytes", cfg.MaxFrameBytes, withEnv("max-frame-bytes", "largest WebSocket message accepted"))
	fs.IntVar(&cfg.MaxContentBytes, "max-content-bytes", cfg.MaxContentBytes, withEnv("max-content-bytes", "largest message content accepted"))
	fs.IntVar(&cfg.QueueFrames, "queue-frames", cfg.QueueFrames, withEnv("queue-frames", "per-connection outbound queue limit in frames"))
	fs.IntVar(&cfg.QueueBytes, "queue-bytes", cfg.QueueBytes, withEnv("queue-bytes", "per-connection outbound queue limit in bytes"))
	fs.IntVar(&cfg.CommitBatch, "commit-batch", cfg.CommitBatch, withEnv("commit-batch", "most messages per group commit"))
	fs.IntVar(&cfg.GroupMaxMembers, "group-max-members", cfg.GroupMaxMembers, withEnv("group-max-members", "largest group allowed, and the size of a group created without one"))
	fs.BoolVar(&cfg.Compression, "compression", cfg.Compression, withEnv("compression", "offer per-message compression (permessage-deflate) to clients"))
	fs.BoolVar(&cfg.FriendRequired, "friend-required", cfg.FriendRequired, withEnv("friend-required", "one-to-one messages need friendship"))
	fs.BoolVar(&cfg.FriendAutoAccept, "friend-auto-accept", cfg.FriendAutoAccept, withEnv("friend-auto-accept", "friend requests become friendships at once"))
	fs.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, withEnv("pprof", "serve Go's profiler at /debug/pprof/ (admin key required)"))
	fs.DurationVar(&cfg.ShutdownDrain, "shutdown-drain", cfg.ShutdownDrain, withEnv("shutdown-drain", "how long /readyz answers 503 before a shutdown stops accepting"))
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, withEnv("shutdown-timeout", "how long a graceful shutdown may take after the drain"))
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, withEnv("log-level", "debug, info, warn or error"))
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, withEnv("log-format", "text or json"))
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "admin-key" {
			cfg.AdminKeyFrom = "flag --admin-key"
		}
	})
	if cfg.AdminKey == "" {
		cfg.AdminKeyFrom = ""
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.Validate()
}

// withEnv appends the environment variable of flag name to its usage.
func withEnv(name, usage string) string {
	return usage + " (env PARLEY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + ")"
}

// yamlFieldNotFound matches yaml's message for an unknown key.
var yamlFieldNotFound = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)

// yamlError rewrites a YAML decoding error for an operator: unknown keys by
// name and line, and value errors without Go type names.
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := yamlFieldNotFound.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: unknown key %q (docs/operations.md lists the keys)", m[1], m[2]))
			continue
		}
		e = strings.NewReplacer(
			"into time.Duration", "as a duration (like 10s or 1h30m)",
			"into int", "as a whole number",
			"into bool", "as true or false",
			"into string", "as a string",
		).Replace(e)
		msgs = append(msgs, e)
	}
	return fmt.Errorf("config: %s: %s", path, strings.Join(msgs, "; "))
}
