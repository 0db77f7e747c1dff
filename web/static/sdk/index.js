// Package @parley/client is the JavaScript SDK for Parley: see Client.
export { Client, Defaults } from "./client.js";
export { Codes, ParleyError, terminalKick } from "./errors.js";
export { GroupEventType, SystemUser, describeGroupEvent, groupEventOf } from "./groups.js";
export { Rest, httpBase } from "./rest.js";
export { Sequencer } from "./sequencer.js";
