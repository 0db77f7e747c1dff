package api

import (
	"context"
	"net/http"

	"github.com/parleyim/parley/protocol"
)

// The friends and blocks routes. A user token acts for its user; the admin
// key acts for the user named by ?user=, and alone imports friendships.
// Every route but the import works over the call frame too.

func (a *API) socialRoutes(mux *http.ServeMux) {
	a.handle(mux, "POST /v1/friends/requests", anyone, a.requestFriend)
	a.handle(mux, "GET /v1/friends/requests", anyone, syncRoute(a.Social.FriendRequests))
	a.handle(mux, "POST /v1/friends/requests/{user}/accept", anyone, a.acceptFriend)
	a.handle(mux, "POST /v1/friends/requests/{user}/refuse", anyone, a.refuseFriend)
	a.handle(mux, "POST /v1/friends/import", adminOnly, a.importFriends)
	a.handle(mux, "GET /v1/friends", anyone, syncRoute(a.Social.Friends))
	a.handle(mux, "GET /v1/friends/{user}", anyone, a.friend)
	a.handle(mux, "PATCH /v1/friends/{user}", anyone, a.updateFriend)
	a.handle(mux, "DELETE /v1/friends/{user}", anyone, a.deleteFriend)
	a.handle(mux, "GET /v1/blocks", anyone, syncRoute(a.Social.Blocks))
	a.handle(mux, "PUT /v1/blocks/{user}", anyone, a.block)
	a.handle(mux, "DELETE /v1/blocks/{user}", anyone, a.unblock)
}

// sinceLimit reads the since and limit parameters of an incremental list;
// the service checks and bounds them (protocol.SyncDelta).
func sinceLimit(r *http.Request) (since int64, limit int, err error) {
	if since, err = queryInt(r, "since"); err != nil {
		return 0, 0, err
	}
	n, err := queryInt(r, "limit")
	if err != nil {
		return 0, 0, err
	}
	return since, int(n), nil
}

// syncRoute is the handler of an incremental list: what changed for the
// acting user since ?since=, at most ?limit= entries.
func syncRoute[T any](list func(ctx context.Context, user string, since int64, limit int) (protocol.Delta[T], error)) handlerFunc {
	return func(ctx context.Context, who caller, r *http.Request) (int, any, error) {
		user, err := subject(who, r)
		if err != nil {
			return 0, nil, err
		}
		since, limit, err := sinceLimit(r)
		if err != nil {
			return 0, nil, err
		}
		d, err := list(ctx, user, since, limit)
		return http.StatusOK, d, err
	}
}

func (a *API) requestFriend(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	var in protocol.NewFriendRequest
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	req, err := a.Social.RequestFriend(ctx, user, in)
	return http.StatusCreated, req, err
}

func (a *API) acceptFriend(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	f, err := a.Social.AcceptFriend(ctx, user, r.PathValue("user"))
	return http.StatusOK, f, err
}

func (a *API) refuseFriend(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.Social.RefuseFriend(ctx, user, r.PathValue("user"))
}

func (a *API) importFriends(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in protocol.FriendImport
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	res, err := a.Social.Import(ctx, in)
	return http.StatusOK, res, err
}

func (a *API) friend(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	f, err := a.Social.Friend(ctx, user, r.PathValue("user"))
	return http.StatusOK, f, err
}

func (a *API) updateFriend(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	var in protocol.FriendUpdate
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	f, err := a.Social.UpdateFriend(ctx, user, r.PathValue("user"), in)
	return http.StatusOK, f, err
}

func (a *API) deleteFriend(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.Social.DeleteFriend(ctx, user, r.PathValue("user"))
}

func (a *API) block(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	b, err := a.Social.Block(ctx, user, r.PathValue("user"))
	return http.StatusOK, b, err
}

func (a *API) unblock(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.Social.Unblock(ctx, user, r.PathValue("user"))
}
