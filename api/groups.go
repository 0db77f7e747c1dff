package api

import (
	"context"
	"net/http"

	"github.com/parleyim/parley/group"
	"github.com/parleyim/parley/protocol"
)

// actor is who a group request acts as: the user of a token; the app
// server for the admin key, or the user it names with ?user=.
func actor(who caller, r *http.Request) group.Actor {
	if who.admin {
		if u := r.URL.Query().Get("user"); u != "" {
			return group.Actor{User: u}
		}
		return group.Actor{App: true}
	}
	return group.Actor{User: who.user}
}

func (a *API) createGroup(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	var in protocol.NewGroup
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	g, err := a.Groups.Create(ctx, actor(who, r), in)
	return http.StatusCreated, g, err
}

func (a *API) getGroup(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	g, err := a.Groups.Get(ctx, actor(who, r), r.PathValue("id"))
	return http.StatusOK, g, err
}

func (a *API) updateGroup(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	var in protocol.GroupUpdate
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	g, err := a.Groups.Update(ctx, actor(who, r), r.PathValue("id"), in)
	return http.StatusOK, g, err
}

func (a *API) dismissGroup(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	return http.StatusNoContent, nil, a.Groups.Dismiss(ctx, actor(who, r), r.PathValue("id"))
}

func (a *API) groupMembers(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	since, limit, err := sinceLimit(r)
	if err != nil {
		return 0, nil, err
	}
	m, err := a.Groups.Members(ctx, actor(who, r), r.PathValue("id"), since, limit)
	return http.StatusOK, m, err
}

func (a *API) addMembers(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	var in protocol.MemberChange
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	added, err := a.Groups.Invite(ctx, actor(who, r), r.PathValue("id"), in)
	return http.StatusOK, protocol.AddedMembers{Added: added}, err
}

func (a *API) updateMember(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	var in protocol.MemberUpdate
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	m, err := a.Groups.UpdateMember(ctx, actor(who, r), r.PathValue("id"), r.PathValue("user"), in)
	return http.StatusOK, m, err
}

func (a *API) removeMember(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	return http.StatusNoContent, nil, a.Groups.Remove(ctx, actor(who, r), r.PathValue("id"), r.PathValue("user"))
}

func (a *API) transferGroup(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	var in protocol.Transfer
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	g, err := a.Groups.Transfer(ctx, actor(who, r), r.PathValue("id"), in.To)
	return http.StatusOK, g, err
}

func (a *API) joinGroup(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	var in protocol.JoinGroup
	if r.ContentLength != 0 {
		if err := decodeBody(r, &in); err != nil {
			return 0, nil, err
		}
	}
	j, err := a.Groups.Join(ctx, actor(who, r), r.PathValue("id"), in)
	return http.StatusOK, j, err
}

func (a *API) joinRequests(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	rs, err := a.Groups.Requests(ctx, actor(who, r), r.PathValue("id"))
	return http.StatusOK, rs, err
}

func (a *API) acceptRequest(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	jr, err := a.Groups.Answer(ctx, actor(who, r), r.PathValue("id"), r.PathValue("user"), true)
	return http.StatusOK, jr, err
}

func (a *API) refuseRequest(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	jr, err := a.Groups.Answer(ctx, actor(who, r), r.PathValue("id"), r.PathValue("user"), false)
	return http.StatusOK, jr, err
}

func (a *API) myGroups(ctx context.Context, who caller, r *http.Request) (int, any, error) {
	user, err := subject(who, r)
	if err != nil {
		return 0, nil, err
	}
	since, err := queryInt(r, "since") // the list is not paged: no limit
	if err != nil {
		return 0, nil, err
	}
	gs, err := a.Groups.UserGroups(ctx, user, since)
	return http.StatusOK, gs, err
}
