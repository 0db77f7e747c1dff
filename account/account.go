// Package account manages users, their passwords and the tokens devices
// authenticate with, and the admin credential the app server uses.
//
// Tokens are HMAC-signed JWTs carrying user, platform, device and expiry;
// they are checked without a store read. Revocation is a per-user (and
// per-device) "not before" time kept in the store and cached in memory, so a
// revoked token fails verification at once.
//
// A Service is safe for concurrent use.
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
)

// Limits on user fields.
const (
	MaxNicknameRunes = 64
	MaxAvatarURLLen  = 1024
	MaxExtraBytes    = 4096
	MaxPasswordBytes = 256
	MinPasswordLen   = 8
)

// SystemUser is the reserved account the app server sends notifications as.
const SystemUser = conversation.SystemUser

// Meta keys under which the service keeps its secrets.
const (
	metaSigningKey   = "token_signing_key"
	metaAdminKeyHash = "admin_key_sha256"
	// metaFirstRun is "open" if the store held no user but system when this
	// rule first ran, "closed" otherwise; metaAdminUser exists once the app
	// server has created a user. See Service.FirstRunRegistration.
	metaFirstRun  = "first_run_registration"
	metaAdminUser = "admin_created_user"
)

// ValidUserID reports whether id is a well-formed user id: 1 to 64 of
// letters, digits, '.', '_', '@' and '-'. It is the rule for every name that
// goes into a conversation id (conversation.ValidName).
func ValidUserID(id string) bool { return conversation.ValidName(id) }

// Store is what the account service keeps durably.
type Store interface {
	store.Users
	store.Tokens
	store.Meta
}

// Config configures a Service.
type Config struct {
	// AdminKey, when set, is the admin credential. When empty, one is
	// generated on first start and returned once by New.
	AdminKey string
	// TokenTTL is the default and maximum lifetime of minted tokens.
	TokenTTL time.Duration
	// AllowRegistration enables self-registration with a password.
	AllowRegistration bool
	// HashConcurrency caps concurrent password hashes (each takes ~19 MiB).
	HashConcurrency int
}

// Service is the account service.
type Service struct {
	cfg        Config
	store      Store
	signingKey []byte
	adminHash  [sha256.Size]byte
	hashSlots  chan struct{}
	idKey      func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte // argon2.IDKey
	now        func() time.Time
	firstRun   atomic.Bool

	knownMu  sync.Mutex
	known    map[string]struct{} // active users seen to exist; guarded by knownMu
	knownMax int                 // known is emptied when it reaches this size

	mu          sync.RWMutex
	revocations map[revocationKey]time.Time // guarded by mu
	onRevoke    RevokeHook                  // guarded by mu
}

// RevokeHook closes the live connections of a user's device (every device
// when device is empty) with the kick code, and returns how many it closed.
type RevokeHook func(user, device string, code protocol.Code) int

type revocationKey struct{ user, device string }

// New returns a Service on st. It loads or creates the token signing key and
// the admin credential; newAdminKey is the generated admin key on the very
// first start (show it once) and empty otherwise.
func New(ctx context.Context, st Store, cfg Config) (s *Service, newAdminKey string, err error) {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 7 * 24 * time.Hour
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = 2
	}
	s = &Service{
		cfg:         cfg,
		store:       st,
		hashSlots:   make(chan struct{}, cfg.HashConcurrency),
		idKey:       argon2.IDKey,
		now:         time.Now,
		revocations: make(map[revocationKey]time.Time),
		known:       make(map[string]struct{}),
		knownMax:    knownCacheSize,
	}
	key, err := st.SetMetaValue(ctx, metaSigningKey, randomString(32))
	if err != nil {
		return nil, "", fmt.Errorf("account: load signing key: %w", err)
	}
	if s.signingKey, err = base64.RawURLEncoding.DecodeString(key); err != nil {
		return nil, "", fmt.Errorf("account: decode signing key: %w", err)
	}
	if cfg.AdminKey != "" {
		s.adminHash = sha256.Sum256([]byte(cfg.AdminKey))
	} else {
		candidate := "pk_" + randomString(24)
		sum := sha256.Sum256([]byte(candidate))
		stored, err := st.SetMetaValue(ctx, metaAdminKeyHash, hex.EncodeToString(sum[:]))
		if err != nil {
			return nil, "", fmt.Errorf("account: load admin key: %w", err)
		}
		if stored == hex.EncodeToString(sum[:]) {
			newAdminKey = candidate
		}
		raw, err := hex.DecodeString(stored)
		if err != nil || len(raw) != sha256.Size {
			return nil, "", fmt.Errorf("account: stored admin key hash is malformed")
		}
		copy(s.adminHash[:], raw)
	}
	revs, err := st.Revocations(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("account: load revocations: %w", err)
	}
	for _, r := range revs {
		s.revocations[revocationKey{r.User, r.Device}] = r.Before
	}
	if err := s.ensureSystemUser(ctx); err != nil {
		return nil, "", err
	}
	if err := s.loadFirstRun(ctx); err != nil {
		return nil, "", err
	}
	return s, newAdminKey, nil
}

// loadFirstRun decides whether first-run registration is open: the store
// started empty under this rule (an older store that already had users
// counts as set up) and the app server has not created a user since.
func (s *Service) loadFirstRun(ctx context.Context) error {
	users, err := s.store.ListUsers(ctx, store.UserQuery{Limit: 2})
	if err != nil {
		return fmt.Errorf("account: first run: %w", err)
	}
	state := "open"
	for _, u := range users {
		if u.ID != SystemUser {
			state = "closed"
		}
	}
	if state, err = s.store.SetMetaValue(ctx, metaFirstRun, state); err != nil {
		return fmt.Errorf("account: first run: %w", err)
	}
	_, err = s.store.MetaValue(ctx, metaAdminUser)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.firstRun.Store(state == "open")
	case err != nil:
		return fmt.Errorf("account: first run: %w", err)
	}
	return nil
}

// FirstRunRegistration reports whether self-registration is open because
// the server is in its first run: its store started empty and no user has
// been created with the admin key (CreateUser) since. The first such user
// closes it for good, so a deployment whose app server manages users is
// never open to strangers once set up, while a newcomer's fresh server lets
// people sign up from the web client. AllowRegistration opens it always.
func (s *Service) FirstRunRegistration() bool { return s.firstRun.Load() }

func (s *Service) ensureSystemUser(ctx context.Context) error {
	now := s.now().UTC()
	err := s.store.CreateUser(ctx, store.User{ID: SystemUser, Nickname: "System", CreatedAt: now, UpdatedAt: now})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("account: create system user: %w", err)
	}
	return nil
}

// OnRevoke registers f to be called after tokens are revoked, so live
// connections can be closed.
func (s *Service) OnRevoke(f RevokeHook) {
	s.mu.Lock()
	s.onRevoke = f
	s.mu.Unlock()
}

// IsAdmin reports whether key is the admin credential, in constant time.
func (s *Service) IsAdmin(key string) bool {
	sum := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) == 1
}

// NewUser is the input to CreateUser. An empty ID asks for a generated one.
type NewUser struct {
	ID        string          `json:"id"`
	Nickname  string          `json:"nickname"`
	AvatarURL string          `json:"avatar_url"`
	Extra     json.RawMessage `json:"extra,omitempty"`
	Password  string          `json:"password,omitempty"`
}

// CreateUser validates and stores a new user on behalf of the app server
// (the admin key), which ends first-run registration.
func (s *Service) CreateUser(ctx context.Context, in NewUser) (store.User, error) {
	u, err := s.createUser(ctx, in)
	if err == nil && s.firstRun.Load() {
		if _, err := s.store.SetMetaValue(ctx, metaAdminUser, u.ID); err != nil {
			return u, fmt.Errorf("account: create user: %w", err)
		}
		s.firstRun.Store(false)
	}
	return u, err
}

// createUser validates and stores a new user.
func (s *Service) createUser(ctx context.Context, in NewUser) (store.User, error) {
	if in.ID == "" {
		in.ID = "u_" + randomHex(8)
	}
	if !ValidUserID(in.ID) {
		return store.User{}, protocol.Errorf(protocol.CodeInvalidArgument, "user id must be 1-64 letters, digits, '.', '_', '@' or '-'")
	}
	if err := validateProfile(&in.Nickname, &in.AvatarURL, &in.Extra); err != nil {
		return store.User{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	u := store.User{ID: in.ID, Nickname: in.Nickname, AvatarURL: in.AvatarURL, Extra: in.Extra, CreatedAt: now, UpdatedAt: now}
	if in.Password != "" {
		hash, err := s.hashPassword(ctx, in.Password)
		if err != nil {
			return store.User{}, err
		}
		u.PasswordHash = hash
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrExists) {
			return store.User{}, protocol.Errorf(protocol.CodeAlreadyExists, "user %q already exists", in.ID)
		}
		return store.User{}, fmt.Errorf("account: create user: %w", err)
	}
	return u, nil
}

// UserUpdate is the input to UpdateUser; nil fields are left as they are.
type UserUpdate struct {
	Nickname  *string          `json:"nickname"`
	AvatarURL *string          `json:"avatar_url"`
	Extra     *json.RawMessage `json:"extra"`
	Password  *string          `json:"password"`
}

// UpdateUser validates and applies an update.
func (s *Service) UpdateUser(ctx context.Context, id string, in UserUpdate) (store.User, error) {
	up := store.UserUpdate{Nickname: in.Nickname, AvatarURL: in.AvatarURL, Extra: in.Extra}
	var nick, avatar string
	var extra json.RawMessage
	if in.Nickname != nil {
		nick = *in.Nickname
	}
	if in.AvatarURL != nil {
		avatar = *in.AvatarURL
	}
	if in.Extra != nil {
		extra = *in.Extra
	}
	if err := validateProfile(&nick, &avatar, &extra); err != nil {
		return store.User{}, err
	}
	if in.Password != nil {
		hash, err := s.hashPassword(ctx, *in.Password)
		if err != nil {
			return store.User{}, err
		}
		up.PasswordHash = &hash
	}
	u, err := s.store.UpdateUser(ctx, id, up, s.now().UTC().Truncate(time.Millisecond))
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, protocol.Errorf(protocol.CodeNotFound, "no user %q", id)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("account: update user: %w", err)
	}
	return u, nil
}

func validateProfile(nickname, avatarURL *string, extra *json.RawMessage) error {
	switch {
	case !utf8.ValidString(*nickname) || !utf8.ValidString(*avatarURL):
		return protocol.Errorf(protocol.CodeInvalidUTF8, "nickname and avatar_url must be valid UTF-8")
	case utf8.RuneCountInString(*nickname) > MaxNicknameRunes:
		return protocol.Errorf(protocol.CodeInvalidArgument, "nickname is longer than %d characters", MaxNicknameRunes)
	case len(*avatarURL) > MaxAvatarURLLen:
		return protocol.Errorf(protocol.CodeInvalidArgument, "avatar_url is longer than %d bytes", MaxAvatarURLLen)
	case len(*extra) > MaxExtraBytes:
		return protocol.Errorf(protocol.CodeInvalidArgument, "extra is larger than %d bytes", MaxExtraBytes)
	case len(*extra) > 0 && !json.Valid(*extra):
		return protocol.Errorf(protocol.CodeInvalidArgument, "extra must be valid JSON")
	}
	if string(*extra) == "null" {
		*extra = nil
	}
	return nil
}

// User returns a user or a not_found error.
func (s *Service) User(ctx context.Context, id string) (store.User, error) {
	u, err := s.store.User(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, protocol.Errorf(protocol.CodeNotFound, "no user %q", id)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("account: get user: %w", err)
	}
	return u, nil
}

// ListUsers lists users matching q; Limit is clamped to 1..1000 (default
// 100). next is the cursor (q.After) of the following page, "" on the last.
func (s *Service) ListUsers(ctx context.Context, q store.UserQuery) (users []store.User, next string, err error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	limit := min(q.Limit, 1000)
	q.Limit = limit + 1 // one more tells whether another page exists
	users, err = s.store.ListUsers(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("account: list users: %w", err)
	}
	if len(users) > limit {
		users = users[:limit]
		next = users[limit-1].ID
	}
	return users, next, nil
}

// Revoke invalidates every token of user issued until now, or of one device
// when device is not empty, then has the OnRevoke hook close the matching
// connections with the kick code. It returns how many it closed. Revoking
// before closing means a kicked device cannot come straight back.
func (s *Service) Revoke(ctx context.Context, user, device string, code protocol.Code) (int, error) {
	if device != "" && !devicePattern.MatchString(device) {
		return 0, protocol.Errorf(protocol.CodeInvalidArgument, "device must be 1-64 letters, digits, '.', '_', ':' or '-'")
	}
	if _, err := s.User(ctx, user); err != nil {
		return 0, err
	}
	// Tokens carry millisecond issue times; a token minted in the same
	// millisecond as the revocation is revoked too.
	before := s.now().UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	if err := s.store.Revoke(ctx, store.Revocation{User: user, Device: device, Before: before}); err != nil {
		return 0, fmt.Errorf("account: revoke: %w", err)
	}
	s.mu.Lock()
	k := revocationKey{user, device}
	if before.After(s.revocations[k]) {
		s.revocations[k] = before
	}
	hook := s.onRevoke
	s.mu.Unlock()
	if hook == nil {
		return 0, nil
	}
	return hook(user, device, code), nil
}

// BearerToken returns the credential of an Authorization header value of the
// Bearer scheme, or "" for any other value. As RFC 9110 (section 11.4) has
// it, the scheme is case-insensitive and one or more spaces separate it from
// the credential, which is a single token68 word: no spaces inside.
func BearerToken(header string) string {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	cred = strings.TrimLeft(cred, " ")
	if strings.ContainsAny(cred, " \t") {
		return ""
	}
	return cred
}

func (s *Service) revokedBefore(user, device string) time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all := s.revocations[revocationKey{user, ""}]
	one := s.revocations[revocationKey{user, device}]
	if one.After(all) {
		return one
	}
	return all
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// knownCacheSize bounds the cache of users known to exist: at 64-byte ids,
// a few MiB at most.
const knownCacheSize = 1 << 16

// UserExists reports whether a user exists and is active (not deactivated):
// whether messages may be sent to them. Positive answers are cached in a
// bounded set, emptied when full; Deactivate drops its user from it.
func (s *Service) UserExists(ctx context.Context, id string) (bool, error) {
	if s.Deactivated(id) {
		return false, nil
	}
	s.knownMu.Lock()
	_, ok := s.known[id]
	s.knownMu.Unlock()
	if ok {
		return true, nil
	}
	_, err := s.store.User(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("account: user exists: %w", err)
	}
	s.knownMu.Lock()
	if len(s.known) >= s.knownMax {
		clear(s.known)
	}
	s.known[id] = struct{}{}
	s.knownMu.Unlock()
	// A deactivation that ran since the check above dropped id before it
	// was added: look again so the cache never keeps a deactivated user.
	if s.Deactivated(id) {
		s.forgetKnown(id)
		return false, nil
	}
	return true, nil
}

func (s *Service) forgetKnown(id string) {
	s.knownMu.Lock()
	delete(s.known, id)
	s.knownMu.Unlock()
}

// deactivatedBefore is the Before of the every-device revocation that
// deactivates a user: no token, issued before or after, verifies again, and
// since revocations only move forward, deactivation is permanent.
var deactivatedBefore = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Deactivated reports whether the user was deactivated. It reads memory only.
func (s *Service) Deactivated(user string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.revocations[revocationKey{user, ""}].Before(deactivatedBefore)
}

// Deactivate ends a user's account for good: every token of theirs stops
// verifying (with user_deactivated), no new one can be minted, messages can
// no longer be sent to them, and their live connections get the kick
// user_deactivated. Their profile and the messages of their conversations
// stay, and the id stays taken. It returns how many connections it closed,
// and is idempotent. The system account cannot be deactivated.
func (s *Service) Deactivate(ctx context.Context, user string) (int, error) {
	if user == SystemUser {
		return 0, protocol.Errorf(protocol.CodeReservedUser, "the system account cannot be deactivated")
	}
	if _, err := s.User(ctx, user); err != nil {
		return 0, err
	}
	if err := s.store.Revoke(ctx, store.Revocation{User: user, Before: deactivatedBefore}); err != nil {
		return 0, fmt.Errorf("account: deactivate: %w", err)
	}
	s.mu.Lock()
	s.revocations[revocationKey{user, ""}] = deactivatedBefore
	hook := s.onRevoke
	s.mu.Unlock()
	s.forgetKnown(user)
	if hook == nil {
		return 0, nil
	}
	return hook(user, "", protocol.CodeKickDeactivated), nil
}
