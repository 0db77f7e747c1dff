package protocol

import (
	"encoding/json"
	"time"
)

// Payloads of the friends and blocks routes (REST, or call frames). Their
// lists are incremental: Delta[FriendRequest], Delta[Friend] and
// Delta[Block], whose Deleted holds user ids.

// Limits of the friends and blocks routes.
const (
	MaxFriendRequestMessage = 256     // characters of a friend request's message
	MaxFriendRemark         = 64      // characters of a remark
	MaxFriendExtraBytes     = 4 << 10 // bytes of a friend's extra JSON
	MaxFriendImport         = 1000    // friendships per import
	MaxDeltaPage            = 500     // default and largest page of an incremental list
)

// States of a FriendRequest.
const (
	RequestPending  = "pending"
	RequestAccepted = "accepted"
	RequestRefused  = "refused"
)

// NewFriendRequest asks To to become friends (POST /v1/friends/requests).
type NewFriendRequest struct {
	To      string `json:"to"`
	Message string `json:"message,omitempty"`
}

// FriendRequest is a request from From to To, as both of them list it.
// State is RequestPending until To accepts or refuses it; a request that
// made the two friends at once (they had asked each other, or the server
// accepts every request) is RequestAccepted from the start.
type FriendRequest struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Message   string    `json:"message,omitempty"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"`
}

// Friend is one entry of the user's friend list: the friend, and the
// remark and extra that only the user sees.
type Friend struct {
	User      string          `json:"user"`
	Remark    string          `json:"remark,omitempty"`
	Extra     json.RawMessage `json:"extra,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Version   int64           `json:"version"`
}

// FriendUpdate changes the given fields of a friend entry
// (PATCH /v1/friends/{user}).
type FriendUpdate struct {
	Remark *string          `json:"remark,omitempty"`
	Extra  *json.RawMessage `json:"extra,omitempty"`
}

// Block is one entry of the user's block list.
type Block struct {
	User      string    `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	Version   int64     `json:"version"`
}

// Friendship names two users to make friends.
type Friendship struct {
	User   string `json:"user"`
	Friend string `json:"friend"`
}

// FriendImport is the app server's import of friendships
// (POST /v1/friends/import).
type FriendImport struct {
	Friendships []Friendship `json:"friendships"`
}

// FriendImportResult says how many friendships of an import were new and
// how many existed already.
type FriendImportResult struct {
	Added    int `json:"added"`
	Existing int `json:"existing"`
}
