// kexa template: render a chat template exactly as transformers would (tokenize=False).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/template.h"
#include "cli/arg_cursor.h"
#include "cli/commands.h"
#include "runtime/engine.h"
#include "util/error.h"
#include "util/read_file.h"

namespace kexa::cli {

namespace {

using ojson = nlohmann::ordered_json;

const char* kUsage =
    "usage: kexa template (-m PATH | --template FILE.jinja) --messages FILE.json [--tools FILE.json]\n"
    "                     [--kwargs JSON] [--add-generation-prompt] [--name TEMPLATE_NAME]\n"
    "       kexa template --batch FILE.jsonl\n"
    "  -m PATH   model/tokenizer folder, tokenizer_config.json, .gguf, or a template file\n"
    "  Prints the rendered prompt exactly (no newline added).\n"
    "  --batch: each input line is {\"model\": PATH | \"template_source\": TEXT, \"messages\": [...],\n"
    "  \"tools\": [...]|null, \"kwargs\": {...}, \"add_generation_prompt\": bool}; each output line is\n"
    "  {\"ok\": true, \"text\": ...} or {\"ok\": false, \"error\": ...}.\n";

ojson parse_json(const std::string& text, const std::string& what) {
  try {
    return ojson::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(what, ": invalid JSON: ", e.what());
  }
}

int run_batch(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path);
  std::map<std::string, std::unique_ptr<chat::ChatTemplate>> cache;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    ojson result;
    try {
      ojson req = parse_json(line, path + " line " + std::to_string(lineno));
      std::string key;
      bool from_source = req.contains("template_source");
      key = from_source ? "src:" + req["template_source"].get<std::string>() : "path:" + req.at("model").get<std::string>();
      auto it = cache.find(key);
      if (it == cache.end()) {
        auto t = from_source ? chat::ChatTemplate::from_source(req["template_source"].get<std::string>(),
                                                               req.value("special_tokens", ojson::object()))
                             : Engine::open_chat_template(req["model"].get<std::string>());
        it = cache.emplace(key, std::make_unique<chat::ChatTemplate>(std::move(t))).first;
      }
      ojson tools = req.value("tools", ojson());
      ojson kwargs = req.value("kwargs", ojson::object());
      std::string text = it->second->render(req.at("messages"), tools, req.value("add_generation_prompt", false), kwargs,
                                            req.value("name", std::string()));
      result["ok"] = true;
      result["text"] = text;
    } catch (const std::exception& e) {
      result["ok"] = false;
      result["error"] = e.what();
    }
    std::string out = result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
  }
  return 0;
}

}  // namespace

int template_main(int argc, char** argv) {
  std::string model, template_file, messages_file, tools_file, kwargs_text, batch, name;
  bool add_gen = false;
  for (ArgCursor arg(argc, argv, "kexa template: ", std::string("\n") + kUsage); arg.next();) {
    if (arg.is({"-m", "--model"})) {
      model = arg.value();
    } else if (arg.is({"--template"})) {
      template_file = arg.value();
    } else if (arg.is({"--messages"})) {
      messages_file = arg.value();
    } else if (arg.is({"--tools"})) {
      tools_file = arg.value();
    } else if (arg.is({"--kwargs"})) {
      kwargs_text = arg.value();
    } else if (arg.is({"--add-generation-prompt"})) {
      add_gen = true;
    } else if (arg.is({"--name"})) {
      name = arg.value();
    } else if (arg.is({"--batch"})) {
      batch = arg.value();
    } else {
      return arg.help_or_unknown("kexa template: unknown argument '", kUsage);
    }
  }
  if (!batch.empty()) return run_batch(batch);
  if (model.empty() == template_file.empty()) fail("kexa template: give exactly one of -m PATH or --template FILE\n", kUsage);
  if (messages_file.empty()) fail("kexa template: --messages FILE.json is required\n", kUsage);
  chat::ChatTemplate tpl = Engine::open_chat_template(model.empty() ? template_file : model);
  ojson messages = parse_json(read_file(messages_file), messages_file);
  ojson tools = tools_file.empty() ? ojson() : parse_json(read_file(tools_file), tools_file);
  ojson kwargs = kwargs_text.empty() ? ojson::object() : parse_json(kwargs_text, "--kwargs");
  std::string out = tpl.render(messages, tools, add_gen, kwargs, name);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace kexa::cli
