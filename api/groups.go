package api

import (
	"context"
	"net/http"

	"github.com/parleyim/parley/protocol"
)

// The app server's routes for group conversations: members talk in a group
// over WebSocket (or POST /v1/messages with conv) like in any conversation;
// these create groups and change who is in them.

func (a *API) createGroup(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in protocol.NewGroup
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	g, err := a.Messages.CreateGroup(ctx, in)
	return http.StatusCreated, g, err
}

func (a *API) getGroup(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	g, err := a.Messages.Group(ctx, r.PathValue("id"))
	return http.StatusOK, g, err
}

func (a *API) groupMembers(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	m, err := a.Messages.GroupMembers(ctx, r.PathValue("id"))
	return http.StatusOK, m, err
}

func (a *API) addMembers(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	var in protocol.MemberChange
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	m, err := a.Messages.AddMembers(ctx, r.PathValue("id"), in)
	return http.StatusOK, m, err
}

func (a *API) removeMember(ctx context.Context, _ caller, r *http.Request) (int, any, error) {
	err := a.Messages.RemoveMember(ctx, r.PathValue("id"), r.PathValue("user"))
	return http.StatusNoContent, nil, err
}
