// Type helpers over the generated frame types.

import type {
  AgentCompletedFrame,
  AgentErrorFrame,
  AgentResponseChunkFrame,
  AgentStartedFrame,
  AgentThinkingFrame,
  ConnectionEstablished,
  GenericFrame,
  OutboundFrame,
  ToolCompletedFrame,
  ToolExecutingFrame,
} from "./generated/outbound.js";

/** The `type` of every frame a server sends. */
export type OutboundType = OutboundFrame["type"];

/** The frame of type `T`. */
export type FrameOf<T extends OutboundType> = Extract<OutboundFrame, { type: T }>;

/** The seven agent events of a run. */
export type AgentEventFrame =
  | AgentStartedFrame
  | AgentThinkingFrame
  | ToolExecutingFrame
  | ToolCompletedFrame
  | AgentResponseChunkFrame
  | AgentCompletedFrame
  | AgentErrorFrame;

/** A frame on the user's event stream (it carries `seq`): the agent events and the other
 * server types a custom service may send. */
export type StreamFrame = AgentEventFrame | GenericFrame;

/** The `type` of a stream frame. */
export type StreamType = StreamFrame["type"];

/** The events that end a run. */
export type TerminalFrame = AgentCompletedFrame | AgentErrorFrame;

/** What `connection_established` says about the connection (its payload). */
export type ConnectionInfo = ConnectionEstablished;

/** The agentwire protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** The subprotocol marker offered next to the token (`jwt-auth`). */
export const MARKER_PROTOCOL = "jwt-auth";

/** The subprotocols offered for `token`: the marker and `jwt.<token>`. */
export function subprotocols(token: string): [string, string] {
  return [MARKER_PROTOCOL, `jwt.${token}`];
}

/** Whether `frame` is on the user's stream (has a `seq`). */
export function isStreamFrame(frame: OutboundFrame): frame is StreamFrame {
  return typeof (frame as { seq?: unknown }).seq === "number";
}
