package api

import (
	"context"
	"net/http"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
)

// updateSettings changes the user's settings of a conversation.
func (a *API) updateSettings(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	var in protocol.SettingsUpdate
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.UpdateSettings(ctx, user, r.PathValue("conv"), in, router.Device{})
	return http.StatusOK, res, err
}

// deleteConversation removes a conversation from the user's list: hidden
// until a newer message, its history cleared for the user.
func (a *API) deleteConversation(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.DeleteConversation(ctx, user, r.PathValue("conv"), router.Device{})
	return http.StatusOK, res, err
}

// recentConversations pages through the user's list in display order.
func (a *API) recentConversations(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.RecentConversations(ctx, user, r.URL.Query().Get("after"), int(min(limit, protocol.MaxConversationsPage)))
	return http.StatusOK, res, err
}

// unreadTotal is the user's total unread count, muted conversations apart.
func (a *API) unreadTotal(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	res, err := a.Messages.UnreadTotal(ctx, user)
	return http.StatusOK, res, err
}
