package account

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/parleyim/parley/protocol"
)

// Platforms a token may name, grouped into the classes the "class" login
// policy uses.
var platformClass = map[string]string{
	"ios": "mobile", "android": "mobile",
	"ipad": "pad", "android_pad": "pad",
	"windows": "desktop", "macos": "desktop", "linux": "desktop",
	"web": "web", "mini_program": "web",
	"server": "server",
}

// PlatformClass returns the class of a platform (mobile, pad, desktop, web,
// server), or "" for an unknown platform.
func PlatformClass(platform string) string { return platformClass[platform] }

var devicePattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// Claims is what a verified token says about its bearer.
type Claims struct {
	User     string
	Platform string
	Device   string
	Issued   time.Time
	Expires  time.Time
}

type jwtClaims struct {
	Platform string `json:"plt"`
	Device   string `json:"dev"`
	IssuedMS int64  `json:"iat_ms"`
	jwt.RegisteredClaims
}

// IssueToken mints a token for user on platform and device. ttl zero or above
// the configured TokenTTL means TokenTTL. The system account gets none
// (reserved_user), nor does a deactivated user (user_deactivated).
func (s *Service) IssueToken(ctx context.Context, user, platform, device string, ttl time.Duration) (string, time.Time, error) {
	if PlatformClass(platform) == "" {
		return "", time.Time{}, protocol.Errorf(protocol.CodeInvalidArgument, "unknown platform %q", platform)
	}
	if !devicePattern.MatchString(device) {
		return "", time.Time{}, protocol.Errorf(protocol.CodeInvalidArgument, "device must be 1-64 letters, digits, '.', '_', ':' or '-'")
	}
	if ttl < 0 {
		return "", time.Time{}, protocol.Errorf(protocol.CodeInvalidArgument, "ttl must not be negative")
	}
	if ttl == 0 || ttl > s.cfg.TokenTTL {
		ttl = s.cfg.TokenTTL
	}
	if user == SystemUser {
		return "", time.Time{}, protocol.Errorf(protocol.CodeReservedUser, "no token can be minted for the system account: it only sends over REST with the admin key")
	}
	if _, err := s.User(ctx, user); err != nil {
		return "", time.Time{}, err
	}
	// A token minted right after a revocation, within the same millisecond,
	// must not count as revoked: issue it no earlier than the revocation.
	// A deactivation revokes into the far future: no token then.
	issued := s.now().UTC().Truncate(time.Millisecond)
	before := s.revokedBefore(user, device)
	if !before.Before(deactivatedBefore) {
		return "", time.Time{}, protocol.Errorf(protocol.CodeUserDeactivated, "user %q is deactivated", user)
	}
	if issued.Before(before) {
		issued = before
	}
	exp := issued.Add(ttl)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{
		Platform: platform,
		Device:   device,
		IssuedMS: issued.UnixMilli(),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(issued),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	})
	signed, err := tok.SignedString(s.signingKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("account: sign token: %w", err)
	}
	return signed, exp.Truncate(time.Second), nil
}

// Verify checks a token's signature, expiry and revocation. Failures are
// *protocol.Error with code unauthenticated, token_expired, token_revoked or
// user_deactivated.
func (s *Service) Verify(token string) (Claims, error) {
	var c jwtClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.signingKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, protocol.Errorf(protocol.CodeTokenExpired, "token has expired")
	case err != nil:
		return Claims{}, protocol.Errorf(protocol.CodeUnauthenticated, "token is not valid")
	case c.Subject == "" || c.Device == "" || PlatformClass(c.Platform) == "":
		return Claims{}, protocol.Errorf(protocol.CodeUnauthenticated, "token is missing claims")
	case c.Subject == SystemUser:
		// Minted before the system account was refused tokens.
		return Claims{}, protocol.Errorf(protocol.CodeUnauthenticated, "the system account cannot connect")
	}
	issued := time.UnixMilli(c.IssuedMS).UTC()
	if before := s.revokedBefore(c.Subject, c.Device); issued.Before(before) {
		if !before.Before(deactivatedBefore) {
			return Claims{}, protocol.Errorf(protocol.CodeUserDeactivated, "user %q is deactivated", c.Subject)
		}
		return Claims{}, protocol.Errorf(protocol.CodeTokenRevoked, "token has been revoked")
	}
	return Claims{User: c.Subject, Platform: c.Platform, Device: c.Device, Issued: issued, Expires: c.ExpiresAt.Time}, nil
}
