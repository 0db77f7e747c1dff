package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleyim/parley/admin"
	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
)

// adminCmd is an operator command that calls the REST API with the admin
// key and prints the answer as JSON.
type adminCmd struct {
	name    string // "token", or "user create" for a subcommand
	args    []string
	summary string // one line, for the command lists
	about   string // what it does, for its help
	example string
	// flags defines the command's own flags on fs and returns the action.
	flags func(fs *flag.FlagSet) func(ctx context.Context, c *admin.Client, args []string) (any, error)
}

// adminCmds are the operator commands, in the order help lists them.
var adminCmds = []adminCmd{
	{
		name: "user create", summary: "create a user",
		about:   "Creates a user. Without --id the server picks the id.",
		example: "parley user create --id alice --nickname Alice",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			id := fs.String("id", "", "user `id` (generated if empty)")
			nickname := fs.String("nickname", "", "display `name`")
			avatar := fs.String("avatar-url", "", "avatar `URL`")
			password := fs.String("password", "", "`password` for password login (optional)")
			extra := fs.String("extra", "", "app-defined `JSON` object stored with the user")
			return func(ctx context.Context, c *admin.Client, _ []string) (any, error) {
				if *extra != "" && !json.Valid([]byte(*extra)) {
					return nil, errUsage("--extra must be a JSON object")
				}
				return c.CreateUser(ctx, admin.NewUser{ID: *id, Nickname: *nickname, AvatarURL: *avatar, Password: *password, Extra: json.RawMessage(*extra)})
			}
		},
	},
	{
		name: "user get", args: []string{"ID"}, summary: "show a user",
		about:   "Shows the profile of user ID.",
		example: "parley user get alice",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return c.User(ctx, args[0])
			}
		},
	},
	{
		name: "user list", summary: "list or search users",
		about:   "Lists users in id order, a page at a time; pass the printed \"next\" as --after for the next page.",
		example: "parley user list --search ali --limit 20",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			search := fs.String("search", "", "`text` the id or nickname contains")
			after := fs.String("after", "", "cursor: list ids after this `id`")
			limit := fs.Int("limit", 100, "page `size`")
			return func(ctx context.Context, c *admin.Client, _ []string) (any, error) {
				users, next, err := c.ListUsers(ctx, *search, *after, *limit)
				return map[string]any{"users": users, "next": next}, err
			}
		},
	},
	{
		name: "user update", args: []string{"ID"}, summary: "change a user's profile or password",
		about:   "Changes the fields of user ID given as flags; the others keep their value.",
		example: "parley user update alice --nickname 'Alice L.' --password 'new secret'",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			nickname := fs.String("nickname", "", "new display `name`")
			avatar := fs.String("avatar-url", "", "new avatar `URL`")
			password := fs.String("password", "", "new `password`")
			extra := fs.String("extra", "", "new app-defined `JSON` object")
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				var u admin.UserUpdate
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "nickname":
						u.Nickname = nickname
					case "avatar-url":
						u.AvatarURL = avatar
					case "password":
						u.Password = password
					case "extra":
						u.Extra = json.RawMessage(*extra)
					}
				})
				if u.Nickname == nil && u.AvatarURL == nil && u.Password == nil && u.Extra == nil {
					return nil, errUsage("nothing to change: give --nickname, --avatar-url, --password or --extra")
				}
				if u.Extra != nil && !json.Valid(u.Extra) {
					return nil, errUsage("--extra must be a JSON object")
				}
				return c.UpdateUser(ctx, args[0], u)
			}
		},
	},
	{
		name: "user deactivate", args: []string{"ID"}, summary: "deactivate a user for good",
		about: "Deactivates user ID: their connections end with kick user_deactivated, their tokens stop working and none can be minted; " +
			"their messages stay in the conversations' history and the id stays taken. It cannot be undone.",
		example: "parley user deactivate mallory",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				n, err := c.Deactivate(ctx, args[0])
				return map[string]int{"kicked": n}, err
			}
		},
	},
	{
		name: "user sessions", args: []string{"ID"}, summary: "list a user's live connections",
		about:   "Lists the devices user ID has connected now, with platform, address and since when.",
		example: "parley user sessions alice",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return c.UserSessions(ctx, args[0])
			}
		},
	},
	{
		name: "token", args: []string{"USER"}, summary: "mint a device token for USER",
		about:   "Mints a token for one device of USER, to pass to the device's client.",
		example: "parley token alice --platform ios --device iphone-1 --ttl 24h\n  ALICE=$(parley token alice --device laptop --token-only)",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			platform := fs.String("platform", "linux", "`platform`: ios, android, ipad, android_pad, windows, macos, linux, web, mini_program, server")
			device := fs.String("device", "cli", "device `id`")
			ttl := fs.Duration("ttl", 0, "token `lifetime` (0: the server's token_ttl)")
			only := fs.Bool("token-only", false, "print the bare token, not JSON (for a shell variable)")
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				tok, err := c.IssueToken(ctx, args[0], *platform, *device, *ttl)
				if *only {
					return rawOutput(tok.Token), err
				}
				return tok, err
			}
		},
	},
	{
		name: "revoke", args: []string{"USER"}, summary: "revoke USER's tokens (of one device with --device)",
		about:   "Revokes every token of USER issued so far, or those of one device; connections using them are closed.",
		example: "parley revoke alice --device iphone-1",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			device := fs.String("device", "", "only this device `id` (all devices if empty)")
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return map[string]string{"revoked": args[0]}, c.Revoke(ctx, args[0], *device)
			}
		},
	},
	{
		name: "kick", args: []string{"USER"}, summary: "force USER's devices offline",
		about:   "Closes USER's connections (of one device with --device) with kick forced_offline and revokes their tokens.",
		example: "parley kick alice --device iphone-1",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			device := fs.String("device", "", "only this device `id` (all devices if empty)")
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				n, err := c.Kick(ctx, args[0], *device)
				return map[string]int{"kicked": n}, err
			}
		},
	},
	{
		name: "send", summary: "send a message as a user or as the system account",
		about:   "Sends one message to user --to or conversation --conv, from --from or, without it, from the system account, and prints its ack.",
		example: `parley send --to bob --content '{"text":"Your order shipped"}'`,
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			from := fs.String("from", "", "sender user `id` (the system account if empty)")
			to := fs.String("to", "", "recipient user `id`")
			conv := fs.String("conv", "", "instead of --to: a conversation `id` such as g:team (the sender must be a member)")
			ctype := fs.String("ctype", "text", "content `type`")
			content := fs.String("content", "", "content as `JSON`, e.g. '{\"text\":\"hi\"}'")
			return func(ctx context.Context, c *admin.Client, _ []string) (any, error) {
				if (*to == "") == (*conv == "") {
					return nil, errUsage("give one of --to and --conv")
				}
				if !json.Valid([]byte(*content)) {
					return nil, errUsage(`--content must be JSON, e.g. '{"text":"hi"}'`)
				}
				return c.Send(ctx, admin.Message{From: *from, To: *to, Conversation: *conv, ContentType: *ctype, Content: json.RawMessage(*content)})
			}
		},
	},
	{
		name: "group create", args: []string{"ID"}, summary: "create a group conversation",
		about:   "Creates the group ID (conversation g:ID) with the users of --members as its first members, and --owner as its owner.",
		example: "parley group create team --owner alice --name Team --members bob,carol",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			members := fs.String("members", "", "comma-separated user `ids`")
			owner := fs.String("owner", "", "the `user` who owns the group (none: the app server manages it)")
			name := fs.String("name", "", "the group's display `name`")
			join := fs.String("join-policy", "", "how others get in: free, approval (default) or invite")
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return c.NewGroup(ctx, protocol.NewGroup{ID: args[0], Owner: *owner, Name: *name, JoinPolicy: *join, Members: splitList(*members)})
			}
		},
	},
	{
		name: "group members", args: []string{"ID"}, summary: "list a group's members",
		about:   "Lists the current members of group ID.",
		example: "parley group members team",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return c.GroupMembers(ctx, args[0])
			}
		},
	},
	{
		name: "group add", args: []string{"ID"}, summary: "add members to a group",
		about:   "Adds the users of --users to group ID. They see messages from now on, or the whole history with --full-history.",
		example: "parley group add team --users dave",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			users := fs.String("users", "", "comma-separated user `ids`")
			full := fs.Bool("full-history", false, "let the new members read the whole history")
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return c.AddMembers(ctx, args[0], splitList(*users), *full)
			}
		},
	},
	{
		name: "group remove", args: []string{"ID", "USER"}, summary: "remove a member from a group",
		about:   "Removes USER from group ID: they keep what they saw and get nothing after.",
		example: "parley group remove team carol",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return map[string]string{"removed": args[1]}, c.RemoveMember(ctx, args[0], args[1])
			}
		},
	},
	{
		name: "group rename", args: []string{"ID", "NAME"}, summary: "rename a group",
		about:   "Sets the name of group ID; its members see a group event.",
		example: "parley group rename team \"The team\"",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return c.UpdateGroup(ctx, args[0], protocol.GroupUpdate{Name: &args[1]})
			}
		},
	},
	{
		name: "group dismiss", args: []string{"ID"}, summary: "dismiss a group",
		about:   "Ends group ID: its members leave it, keeping what they saw, and nothing more happens in it.",
		example: "parley group dismiss team",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				return map[string]string{"dismissed": args[0]}, c.DismissGroup(ctx, args[0])
			}
		},
	},
	{
		name: "backup", args: []string{"DIR"}, summary: "write a consistent backup of the running server's store",
		about: "Has the running server copy its data directory into DIR, a new directory on the server's machine " +
			"(an absolute path, or one relative to this command's working directory when the server runs here). " +
			"The backup holds the token signing key in clear: protect it (docs/operations.md).",
		example: "parley backup /var/backups/parley/$(date +%F)",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			return func(ctx context.Context, c *admin.Client, args []string) (any, error) {
				dir, err := filepath.Abs(args[0])
				if err != nil {
					return nil, err
				}
				return map[string]string{"backup": dir}, c.Backup(ctx, dir)
			}
		},
	},
	{
		name: "online", summary: "list the devices online",
		about:   "Lists the live WebSocket connections, of everyone or of one user.",
		example: "parley online --user alice",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			user := fs.String("user", "", "only this user's `id`")
			return func(ctx context.Context, c *admin.Client, _ []string) (any, error) {
				return c.Sessions(ctx, *user)
			}
		},
	},
	{
		name: "conversations", summary: "list a user's conversations",
		about:   "Lists the conversations of --user changed after version --since (all with 0), with seqs and unread counts.",
		example: "parley conversations --user bob",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			user := fs.String("user", "", "the user `id` (required)")
			since := fs.Int64("since", 0, "a `version` from an earlier answer")
			return func(ctx context.Context, c *admin.Client, _ []string) (any, error) {
				if *user == "" {
					return nil, errUsage("--user is required")
				}
				return c.Conversations(ctx, *user, *since)
			}
		},
	},
	{
		name: "messages", summary: "read a conversation as one of its users",
		about: "Reads a page of a conversation's history as --user sees it. Name the conversation\n" +
			"with --conv, or the one-to-one conversation with --with PEER. Without --from the\n" +
			"page starts at the oldest message (forward) or the newest (backward).",
		example: "parley messages --user bob --with alice --dir backward --limit 20",
		flags: func(fs *flag.FlagSet) func(context.Context, *admin.Client, []string) (any, error) {
			user := fs.String("user", "", "the reading user's `id` (required)")
			conv := fs.String("conv", "", "conversation `id`, e.g. d:alice:bob")
			with := fs.String("with", "", "the `peer` of a one-to-one conversation, instead of --conv")
			from := fs.Int64("from", 0, "first `seq` to return")
			dir := fs.String("dir", "forward", "`direction`: forward or backward")
			limit := fs.Int("limit", 50, "page `size` (at most 200)")
			return func(ctx context.Context, c *admin.Client, _ []string) (any, error) {
				switch {
				case *user == "":
					return nil, errUsage("--user is required")
				case (*conv == "") == (*with == ""):
					return nil, errUsage("give one of --conv and --with")
				case *with != "":
					*conv = conversation.DirectID(*user, *with)
				}
				return c.Messages(ctx, *user, protocol.Pull{Conversation: *conv, From: *from, Direction: *dir, Limit: *limit})
			}
		},
	},
}

// rawOutput is printed as is, on one line, instead of as JSON.
type rawOutput string

// usageError is a mistake in a command line found after parsing.
type usageError string

func errUsage(msg string) error    { return usageError(msg) }
func (e usageError) Error() string { return string(e) }

// findAdminCmd returns the command named by the first words of args and
// the rest of args, or ok false.
func findAdminCmd(args []string) (cmd adminCmd, rest []string, ok bool) {
	for _, c := range adminCmds {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return adminCmd{}, args, false
}

// groupHelp prints the subcommands of group (e.g. "user").
func groupHelp(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: parley %s COMMAND [flags]\n\nCommands:\n", group)
	for _, c := range adminCmds {
		if strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(w, "  %-28s %s\n", strings.TrimPrefix(c.name, group+" ")+" "+strings.Join(c.args, " "), c.summary)
		}
	}
	fmt.Fprintf(w, "\nExamples:\n")
	for _, c := range adminCmds {
		if strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(w, "  %s\n", c.example)
		}
	}
	fmt.Fprintf(w, "\nRun 'parley %s COMMAND --help' for a command's flags.\n", group)
}

// runAdmin runs an operator command with its arguments.
func runAdmin(cmd adminCmd, args []string, stdout, stderr io.Writer) int {
	name := "parley " + cmd.name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	action := cmd.flags(fs)
	baseURL := fs.String("url", envOr("PARLEY_URL", "http://127.0.0.1:8080"), "server `URL` (env PARLEY_URL)")
	if os.Getenv("PARLEY_URL") != "" {
		fs.Lookup("url").DefValue += " from $PARLEY_URL"
	}
	key := fs.String("admin-key", os.Getenv("PARLEY_ADMIN_KEY"), "the server's admin `key` (env PARLEY_ADMIN_KEY)")
	// The default names the key's source, never the key.
	fs.Lookup("admin-key").DefValue = "none, PARLEY_ADMIN_KEY is not set"
	if os.Getenv("PARLEY_ADMIN_KEY") != "" {
		fs.Lookup("admin-key").DefValue = "$PARLEY_ADMIN_KEY (set)"
	}
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s [flags]", name)
		for _, a := range cmd.args {
			fmt.Fprintf(w, " %s", a)
		}
		fmt.Fprintf(w, "\n\n%s\n\nFlags:\n", cmd.about)
		printFlags(w, fs)
		fmt.Fprintf(w, "\nExample:\n  %s\n", cmd.example)
	}
	args, err := parseInterspersed(fs, args)
	if err != nil {
		return flagFailure(err, name, help, stdout, stderr)
	}
	if len(args) != len(cmd.args) {
		want := "no arguments"
		if len(cmd.args) > 0 {
			want = strings.Join(cmd.args, " ")
		}
		return flagFailure(fmt.Errorf("want %s, got %q", want, args), name, help, stdout, stderr)
	}
	if *key == "" {
		return flagFailure(errors.New("the admin key is required (--admin-key or PARLEY_ADMIN_KEY)"), name, help, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := action(ctx, &admin.Client{BaseURL: *baseURL, Key: *key}, args)
	var ue usageError
	if errors.As(err, &ue) {
		return flagFailure(err, name, help, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if raw, ok := out.(rawOutput); ok {
		fmt.Fprintln(stdout, raw)
		return 0
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(out)
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
