// Wire types of Parley's client protocol (docs/protocol.md), version 2.
// Field names are the JSON names; times are Unix milliseconds.

/** Hello is the first frame of every connection. */
export interface Hello {
  protocol: number;
  user: string;
  platform: string;
  device: string;
  heartbeat_ms: number;
  server_time: number;
}

/** Message is one committed message of a conversation. */
export interface Message {
  conv: string;
  seq: number;
  sid: string;
  cid: string;
  from: string;
  /** The recipient of a one-to-one message; absent in a group. */
  to?: string;
  ctype: string;
  /** The JSON value sent, decoded. */
  content: unknown;
  ts: number;
}

/** Ack is the server's answer to a send once the message is committed. */
export interface Ack {
  cid: string;
  conv: string;
  seq: number;
  sid: string;
  ts: number;
  /** True when this cid was committed before: the ack is the original one. */
  dup?: boolean;
}

/** Conversation is one conversation as the user sees it. */
export interface Conversation {
  id: string;
  /** "direct" (two users, id d:a:b) or "group" (id g:<group>). */
  kind: "direct" | "group" | string;
  /** The other user of a direct conversation; absent in a group. */
  peer?: string;
  max_seq: number;
  read_seq: number;
  peer_read_seq: number;
  min_seq: number;
  /** True once the user was removed from the group: nothing above max_seq will come, and sends are refused. */
  left?: boolean;
  unread: number;
  last_message?: Message;
  version: number;
}

/** Conversations is the reply to a conversations request. */
export interface Conversations {
  version: number;
  conversations: Conversation[];
  /** True when more changes wait: ask again with since set to version. The SDK does. */
  more?: boolean;
}

/** Messages is one page of a conversation's history, in ascending seq. */
export interface Messages {
  conv: string;
  messages: Message[];
  min_seq: number;
  max_seq: number;
  more: boolean;
}

/** Pull asks for a page of history. */
export interface Pull {
  conv: string;
  from: number;
  dir?: "forward" | "backward";
  limit?: number;
}

/** Receipt says that reader has read conv up to seq. */
export interface Receipt {
  conv: string;
  reader: string;
  seq: number;
  ts: number;
}

/** Presence is a user's online state. */
export interface Presence {
  user: string;
  online: boolean;
  devices: number;
  last_seen?: number;
}

/** Kick is the last frame of a connection the server closes on purpose. */
export interface Kick {
  code: string;
  message: string;
}

/** Token is a minted device token. */
export interface Token {
  token: string;
  expires_at: string;
}

/** User is a user's public profile. */
export interface User {
  id: string;
  nickname?: string;
  avatar_url?: string;
  extra?: unknown;
  created_at?: string;
  updated_at?: string;
}

/**
 * GroupEvent is the content of a group event message: a system message
 * (from "system", content type "group.event") that records a change to a
 * group in its conversation. actor did it ("system" for the app server);
 * users are those it was done to, and count says how many when there are
 * more than users names.
 */
export interface GroupEvent {
  event: "created" | "joined" | "left" | "kicked" | "role_changed" | "muted" | "unmuted" | "mute_all" | "info_changed" | "nickname" | "owner_changed" | "dismissed" | string;
  actor: string;
  users?: string[];
  count?: number;
  /** The new role, for role_changed. */
  role?: string;
  /** Until when (Unix ms; -1: until unmuted), for muted. */
  muted_until?: number;
  /** Whether the whole group is now muted, for mute_all. */
  mute_all?: boolean;
  /** The names of the fields changed, for info_changed. */
  fields?: string[];
  /** The group's name, for created and for info_changed when it was renamed. */
  name?: string;
  /** The new nickname, for nickname. */
  nickname?: string;
}


/** Changed is a changed push: something the user keeps in step by version (scope; id names the group for group_members and group_requests) reached version. */
export interface Changed {
  scope: "friends" | "friend_requests" | "blocks" | "groups" | "group_members" | "group_requests" | string;
  id?: string;
  version: number;
}

/** CallResult is the reply to a call frame: the HTTP status and body REST would have answered. */
export interface CallResult {
  status: number;
  body?: unknown;
}
