// Every subcommand is a function taking the arguments after its name; it returns the exit code.
// Errors are thrown as kexa::Error and reported by main.
#pragma once

namespace kexa::cli {

int run_main(int argc, char** argv);       // kexa run
int convert_main(int argc, char** argv);   // kexa convert
int bench_main(int argc, char** argv);     // kexa bench
int tokenize_main(int argc, char** argv);  // kexa tokenize
int template_main(int argc, char** argv);  // kexa template
int chat_main(int argc, char** argv);      // kexa chat
int quantize_main(int argc, char** argv);  // kexa quantize
int tokenizer_main(int argc, char** argv);  // kexa tokenizer train/stats
int pull_main(int argc, char** argv);       // kexa pull
int serve_main(int argc, char** argv);      // kexa serve
int rag_main(int argc, char** argv);        // kexa rag ingest/search/delete
int sql_main(int argc, char** argv);        // kexa sql
int web_main(int argc, char** argv);        // kexa web search/fetch/ask

}  // namespace kexa::cli
