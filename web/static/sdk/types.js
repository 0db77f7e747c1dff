// Wire types of Parley's client protocol (docs/protocol.md), version 2.
// Field names are the JSON names; times are Unix milliseconds.
export {};
