package account

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/store"
)

// argon2id parameters: 19 MiB, 2 passes, 1 lane (OWASP's minimum), about
// 35 ms per hash on the reference machine.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
)

// hashPassword returns an encoded argon2id hash, waiting for one of the
// HashConcurrency slots so a burst of logins cannot exhaust memory.
func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	if err := validatePassword(password); err != nil {
		return "", err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("account: salt: %w", err)
	}
	key, err := s.argon(ctx, password, salt, argonMemoryKiB, argonTime, argonThreads)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

func (s *Service) argon(ctx context.Context, password string, salt []byte, mem, t uint32, p uint8) ([]byte, error) {
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, protocol.Errorf(protocol.CodeUnavailable, "server busy, try again")
	}
	defer func() { <-s.hashSlots }()
	return s.idKey([]byte(password), salt, t, mem, p, argonKeyLen), nil
}

func validatePassword(p string) error {
	if len(p) < MinPasswordLen || len(p) > MaxPasswordBytes {
		return protocol.Errorf(protocol.CodeInvalidArgument, "password must be %d to %d bytes", MinPasswordLen, MaxPasswordBytes)
	}
	return nil
}

var errBadHash = errors.New("account: malformed password hash")

// checkPassword reports whether password matches the encoded hash.
func (s *Service) checkPassword(ctx context.Context, encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var mem, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return false, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false, errBadHash
	}
	got, err := s.argon(ctx, password, salt, mem, t, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Register creates a user with a password, if self-registration is enabled
// (Config.AllowRegistration) or still open on a first run
// (FirstRunRegistration).
func (s *Service) Register(ctx context.Context, in NewUser) (NewUserResult, error) {
	if !s.cfg.AllowRegistration && !s.firstRun.Load() {
		return NewUserResult{}, protocol.Errorf(protocol.CodeDisabled, "self-registration is disabled")
	}
	if in.ID == "" || in.Password == "" {
		return NewUserResult{}, protocol.Errorf(protocol.CodeInvalidArgument, "id and password are required")
	}
	u, err := s.createUser(ctx, in)
	return NewUserResult{ID: u.ID}, err
}

// NewUserResult names the user Register created.
type NewUserResult struct {
	ID string `json:"id"`
}

// Login checks a user's password and mints a token for the device. Unknown
// users and wrong passwords get the same error, after the same work.
func (s *Service) Login(ctx context.Context, user, password, platform, device string) (string, time.Time, error) {
	denied := protocol.Errorf(protocol.CodeUnauthenticated, "wrong user id or password")
	u, err := s.store.User(ctx, user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", time.Time{}, fmt.Errorf("account: login: %w", err)
	}
	hash := u.PasswordHash
	if err != nil || hash == "" {
		// Spend the same time as a real check so timing does not reveal
		// which user ids exist.
		_, _ = s.hashPassword(ctx, "not-a-password")
		return "", time.Time{}, denied
	}
	ok, err := s.checkPassword(ctx, hash, password)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("account: login: %w", err)
	}
	if !ok {
		return "", time.Time{}, denied
	}
	return s.IssueToken(ctx, user, platform, device, 0)
}
