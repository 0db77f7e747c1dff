/** GroupEventType is the content type of the system messages that record a group's events; their content is a GroupEvent. */
export const GroupEventType = "group.event";
/** SystemUser is the sender of system messages, and the actor of group events the app server caused. */
export const SystemUser = "system";
/** groupEventOf returns m's GroupEvent when m is a group event message, and undefined otherwise. */
export function groupEventOf(m) {
    if (m.ctype !== GroupEventType || m.from !== SystemUser)
        return undefined;
    const e = m.content;
    return e && typeof e === "object" && typeof e.event === "string" && typeof e.actor === "string" ? e : undefined;
}
/**
 * describeGroupEvent describes a group event in English, as the Go SDK's
 * protocol.GroupEvent.String does: "alice added bob and carol". nameOf
 * turns a user id into the name to show (the id by default).
 */
export function describeGroupEvent(e, nameOf = (u) => u) {
    const actor = nameOf(e.actor);
    const named = (e.users ?? []).map(nameOf);
    const more = (e.count ?? 0) - named.length;
    const users = listOf(more > 0 ? [...named, `${more} more`] : named);
    switch (e.event) {
        case "created":
            return e.name ? `${actor} created the group ${quote(e.name)}` : `${actor} created the group`;
        case "joined":
            return e.users?.length === 1 && e.users[0] === e.actor && more <= 0 ? `${actor} joined` : `${actor} added ${users}`;
        case "left":
            return `${actor} left`;
        case "kicked":
            return `${actor} removed ${users}`;
        case "role_changed":
            return `${actor} made ${users} ${e.role ?? ""}`.trimEnd();
        case "muted":
            return e.muted_until === undefined || e.muted_until < 0 ? `${actor} muted ${users}` : `${actor} muted ${users} until ${rfc3339(e.muted_until)}`;
        case "unmuted":
            return `${actor} unmuted ${users}`;
        case "mute_all":
            return e.mute_all ? `${actor} muted the group` : `${actor} unmuted the group`;
        case "info_changed":
            return e.name ? `${actor} renamed the group ${quote(e.name)}` : `${actor} changed the group's ${(e.fields ?? []).join(", ")}`;
        case "nickname":
            return `${actor} set the nickname of ${users} to ${quote(e.nickname ?? "")}`;
        case "owner_changed":
            return `${actor} made ${users} the owner`;
        case "dismissed":
            return `${actor} dismissed the group`;
    }
    return `${actor}: ${e.event}`;
}
// listOf joins names as English does: "a", "a and b", "a, b and c".
function listOf(names) {
    if (names.length <= 1)
        return names.join("");
    return names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
}
function quote(s) {
    return JSON.stringify(s);
}
// rfc3339 formats Unix ms as Go's time.RFC3339 does in UTC: no fraction.
function rfc3339(ms) {
    return new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
}
