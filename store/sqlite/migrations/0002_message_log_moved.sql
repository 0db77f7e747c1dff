-- 0002: the message log (conversations, messages, member state and the
-- version counter) moved to store/lsm. Its tables are renamed, not dropped:
-- store/embedded copies an existing data directory's messages into the log
-- once, then drops them (see legacy.go). On a new database they are empty.

DROP INDEX messages_client_id;
ALTER TABLE conversations RENAME TO legacy_conversations;
ALTER TABLE messages RENAME TO legacy_messages;
ALTER TABLE members RENAME TO legacy_members;
ALTER TABLE version_counter RENAME TO legacy_version_counter;
