// Grounded answers and text-to-SQL over HTTP: the document store (/v1/rag/documents), answers
// with citations (/v1/rag/query, rag::answer), SQL (/v1/sql/query, sql::ask) and the server-side
// chat tools kexa_rag_search / kexa_sql_query. Every generation is an ordinary scheduler job.
#pragma once

#include "server/request.h"
#include "server/state.h"

namespace kexa::server {

// Fills in the declarations of server tools named in the body's `tools` (a client may send only
// the name). False when the request names none. BadRequest when a named tool's store or
// database is not configured.
bool expand_server_tools(ServerState& st, json& body);

// Non-streaming chat whose tools include server tools: calls to them are run here and their
// results fed back (a few rounds at most); calls to the client's own tools end the loop and are
// returned as usual. The answer also lists the executed calls (kexa_tool_calls).
void chat_with_server_tools(ServerState& st, json body, httplib::Response& res, double started);

}  // namespace kexa::server
