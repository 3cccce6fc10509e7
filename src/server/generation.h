// /v1/chat/completions and /v1/completions: a validated request (server/request.h) becomes a
// chat turn (runtime/turn.h) queued on the scheduler, answered whole or streamed as server-sent
// events. The server-side tool loop (server/knowledge_routes.cpp) runs its turns through the same
// two steps.
#pragma once

#include <vector>

#include "chat/output_parser.h"
#include "runtime/turn.h"
#include "server/request.h"
#include "server/state.h"

namespace kexa::server {

// BadRequest (naming `param`) when the model has no chat template.
void require_chat_template(const ServerState& st, const char* param);

// Renders and encodes the prompt, checks it against the context and attaches the token filter
// of response_format or of a forced tool call. BadRequest for what the client got wrong.
PreparedTurn prepare_generation(ServerState& st, GenerationRequest& g);

// Queues the turn and runs it to its end on this thread. BadRequest: 429 when the queue is full,
// 400 when the scheduler refuses the prompt, 500 when generation fails.
TurnResult run_generation(ServerState& st, PreparedTurn& turn, const TurnCallbacks& callbacks = {});

// OpenAI's finish_reason for how a turn ended.
const char* finish_name(StopReason reason, bool tool_calls);
json tool_calls_json(const std::vector<chat::ToolCall>& calls, bool with_index);

}  // namespace kexa::server
