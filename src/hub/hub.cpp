#include "hub/hub.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "hub/http.h"
#include "util/error.h"

namespace kexa::hub {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

bool truthy(const std::string& v) {
  std::string s;
  for (char c : v) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s == "1" || s == "true" || s == "yes" || s == "on";
}

bool is_hex(const std::string& s, size_t len) {
  return s.size() == len && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Writes through a temporary file and a rename so readers never see half a file.
void write_text_atomically(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) fail(tmp.string(), ": cannot write");
  }
  fs::rename(tmp, path);
}

// An exclusive advisory lock held for the lifetime of the object (HF's .locks/ convention).
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(path.string(), ": cannot create lock file: ", std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) fail(path.string(), ": cannot lock: ", std::strerror(errno));
    }
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// sha256 of a file (LFS files are named by it), or git's blob sha1 (other files).
std::string file_digest(const fs::path& path, bool git_blob_sha1) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), git_blob_sha1 ? EVP_sha1() : EVP_sha256(), nullptr);
  if (git_blob_sha1) {
    std::string prefix = "blob " + std::to_string(fs::file_size(path));
    EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size() + 1);  // includes the NUL
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// True when the blob's content matches its name (etag); names that are not hashes are trusted.
bool blob_matches(const fs::path& blob, const std::string& etag) {
  if (is_hex(etag, 64)) return file_digest(blob, false) == etag;
  if (is_hex(etag, 40)) return file_digest(blob, true) == etag;
  return true;
}

std::string normalize_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

struct RemoteFile {
  std::string name;
  uint64_t size = 0;
};

struct Selection {
  std::vector<std::string> files;
  std::string entry;  // relative path returned to the loader; empty = the snapshot folder
};

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// `quant` appears in `name` as a whole token (bounded by start/end or - . / _ separators that are
// not part of a longer quant name such as Q4_K vs Q4_K_M).
bool names_quant(const std::string& name, const std::string& quant) {
  std::string n = upper(name), q = upper(quant);
  for (size_t pos = n.find(q); pos != std::string::npos; pos = n.find(q, pos + 1)) {
    bool left = pos == 0 || std::strchr("-./", n[pos - 1]) != nullptr;
    size_t end = pos + q.size();
    bool right = end == n.size() || std::strchr("-./", n[end]) != nullptr;
    if (left && right) return true;
  }
  return false;
}

// "STEM-00001-of-00003.gguf" -> stem, part count; false for other names.
bool parse_split(const std::string& name, std::string& stem, std::string& count) {
  static const std::string tail = ".gguf";
  const size_t n = name.size();
  // -DDDDD-of-DDDDD.gguf is 20 characters.
  if (n < 21 || name.compare(n - tail.size(), tail.size(), tail) != 0) return false;
  const std::string mid = name.substr(n - 20, 15);  // -DDDDD-of-DDDDD
  auto digits = [&](size_t at) {
    return std::all_of(mid.begin() + static_cast<std::ptrdiff_t>(at), mid.begin() + static_cast<std::ptrdiff_t>(at + 5),
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  if (mid[0] != '-' || !digits(1) || mid.compare(6, 4, "-of-") != 0 || !digits(10)) return false;
  stem = name.substr(0, n - 20);
  count = mid.substr(10, 5);
  return true;
}

bool valid_name_part(const std::string& s, bool first_alnum) {
  if (s.empty()) return false;
  if (first_alnum && !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

Selection select_gguf(const std::vector<RemoteFile>& files, const std::string& repo,
                      const std::string& quant) {
  std::vector<std::string> ggufs, matches;
  for (const RemoteFile& f : files) {
    if (!has_suffix(f.name, ".gguf")) continue;
    std::string base = fs::path(f.name).filename().string();
    if (base.rfind("mmproj", 0) == 0) continue;  // vision projectors are not language models
    ggufs.push_back(f.name);
    if (names_quant(f.name, quant)) matches.push_back(f.name);
  }
  if (matches.empty()) {
    std::string available;
    for (const std::string& g : ggufs) available += "\n  " + g;
    if (ggufs.empty()) fail(repo, " has no GGUF files, so ':", quant, "' cannot be chosen");
    fail(repo, " has no GGUF file for ':", quant, "'; available:", available);
  }
  std::sort(matches.begin(), matches.end());
  Selection sel;
  const std::string first = matches.front();
  std::string stem, count;
  if (parse_split(first, stem, count)) {
    // A split model: fetch every shard of the same stem.
    for (const std::string& g : matches) {
      std::string g_stem, g_count;
      if (parse_split(g, g_stem, g_count) && g_stem == stem && g_count == count) sel.files.push_back(g);
    }
    if (sel.files.size() != static_cast<size_t>(std::stoi(count))) {
      fail(repo, ": split GGUF ", stem, " lists ", count, " parts but the repository has ",
           sel.files.size());
    }
    sel.entry = sel.files.front();
  } else {
    sel.files.push_back(first);
    sel.entry = first;
  }
  return sel;
}

Selection select_files(const std::vector<RemoteFile>& files, const ModelRef& ref,
                       const std::vector<std::string>& include) {
  Selection sel;
  bool has_safetensors = false, has_config = false, has_gguf = false;
  for (const RemoteFile& f : files) {
    has_safetensors |= has_suffix(f.name, ".safetensors") && f.name.find('/') == std::string::npos;
    has_config |= f.name == "config.json";
    has_gguf |= has_suffix(f.name, ".gguf");
  }
  if (!ref.quant.empty()) {
    sel = select_gguf(files, ref.repo, ref.quant);
  } else if (has_safetensors || (has_config && !has_gguf)) {
    static const std::set<std::string> kModelFiles = {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "vocab.json", "merges.txt", "chat_template.jinja",
        "added_tokens.json", "model.safetensors.index.json"};
    for (const RemoteFile& f : files) {
      bool top = f.name.find('/') == std::string::npos;
      if (top && (kModelFiles.count(f.name) != 0 || has_suffix(f.name, ".safetensors"))) {
        sel.files.push_back(f.name);
      }
    }
  } else if (has_gguf) {
    // Like llama.cpp's -hf: a sensible default quantization when none is named.
    for (const char* q : {"Q4_K_M", "Q4_0", "Q8_0", "Q6_K", "Q5_K_M", "BF16", "F16"}) {
      bool found = std::any_of(files.begin(), files.end(),
                               [&](const RemoteFile& f) { return has_suffix(f.name, ".gguf") && names_quant(f.name, q); });
      if (found) return select_files(files, ModelRef{ref.repo, q}, include);
    }
    std::vector<std::string> ggufs;
    for (const RemoteFile& f : files) {
      if (has_suffix(f.name, ".gguf")) ggufs.push_back(f.name);
    }
    std::sort(ggufs.begin(), ggufs.end());
    sel.files.push_back(ggufs.front());
    sel.entry = ggufs.front();
  } else {
    fail(ref.repo, " has neither safetensors weights nor GGUF files");
  }
  for (const RemoteFile& f : files) {
    for (const std::string& pattern : include) {
      if (::fnmatch(pattern.c_str(), f.name.c_str(), 0) == 0 &&
          std::find(sel.files.begin(), sel.files.end(), f.name) == sel.files.end()) {
        sel.files.push_back(f.name);
      }
    }
  }
  return sel;
}

std::string repo_folder_name(const std::string& repo) {
  std::string org = repo.substr(0, repo.find('/'));
  std::string name = repo.substr(repo.find('/') + 1);
  return "models--" + org + "--" + name;
}

std::vector<RemoteFile> list_snapshot(const fs::path& snapshot) {
  std::vector<RemoteFile> files;
  for (const auto& entry : fs::recursive_directory_iterator(snapshot)) {
    if (entry.is_directory()) continue;
    files.push_back({entry.path().lexically_relative(snapshot).generic_string(), 0});
  }
  std::sort(files.begin(), files.end(),
            [](const RemoteFile& a, const RemoteFile& b) { return a.name < b.name; });
  return files;
}

std::string how_to_get(const ModelRef& ref) {
  return concat("run `kexa pull ", ref.repo, ref.quant.empty() ? "" : ":" + ref.quant,
                "` with network access (or unset HF_HUB_OFFLINE)");
}

// Resolves a model from the cache only.
std::string from_cache(const ModelRef& ref, const Options& opt, const fs::path& repo_dir,
                       const std::string& why) {
  std::string commit = is_hex(opt.revision, 40) ? opt.revision
                                                : read_text(repo_dir / "refs" / opt.revision);
  fs::path snapshot = repo_dir / "snapshots" / commit;
  if (commit.empty() || !fs::is_directory(snapshot)) {
    fail(ref.repo, " (revision ", opt.revision, ") is not in the cache ", opt.cache_dir, " and ",
         why, ": ", how_to_get(ref));
  }
  Selection sel = select_files(list_snapshot(snapshot), ref, opt.include);
  for (const std::string& f : sel.files) {
    if (!fs::exists(snapshot / f)) {  // follows the link: a dangling link is missing too
      fail(ref.repo, ": ", f, " is missing from the cache snapshot ", snapshot.string(), " and ",
           why, ": ", how_to_get(ref));
    }
  }
  return (sel.entry.empty() ? snapshot : snapshot / sel.entry).string();
}

struct Progress {
  std::atomic<uint64_t> done{0};
  std::atomic<int> files_done{0};
  uint64_t total = 0;
  int files = 0;
};

std::string human_bytes(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

// Downloads one file of the snapshot into the blob store and links it.
void fetch_file(const HttpClient& http, const Options& opt, const ModelRef& ref,
                const fs::path& repo_dir, const std::string& commit, const std::string& name,
                bool verify_existing, Progress& progress) {
  std::string url = opt.endpoint + "/" + ref.repo + "/resolve/" + commit + "/" +
                    url_encode_path(name);
  HttpResponse meta = http.head(url);
  if (meta.status == 401 || meta.status == 403) {
    fail(ref.repo, "/", name, ": access denied (HTTP ", meta.status,
         "): the repository is gated or private; set HF_TOKEN or pass --token");
  }
  if (meta.status == 404) fail(ref.repo, "/", name, ": not found (HTTP 404)");
  if (meta.status >= 400) fail(ref.repo, "/", name, ": HTTP ", meta.status);
  std::string etag = normalize_etag(meta.header("x-linked-etag"));
  if (etag.empty()) etag = normalize_etag(meta.header("etag"));
  if (etag.empty() || etag.find('/') != std::string::npos || etag == "." || etag == "..") {
    fail(url, ": the server sent no usable ETag, so the file cannot be cached");
  }
  std::string size_text = meta.header("x-linked-size");
  if (size_text.empty()) size_text = meta.header("content-length");
  uint64_t size = size_text.empty() ? 0 : std::stoull(size_text);
  std::string location = (meta.status >= 300 && meta.status < 400) ? meta.header("location") : "";
  if (!location.empty() && location.front() == '/') location = opt.endpoint + location;
  if (location.empty()) location = url;

  fs::path blob = repo_dir / "blobs" / etag;
  fs::create_directories(blob.parent_path());
  FileLock lock(fs::path(opt.cache_dir) / ".locks" / repo_dir.filename() / (etag + ".lock"));

  if (fs::exists(blob) && verify_existing && !blob_matches(blob, etag)) {
    std::fprintf(stderr, "kexa pull: %s: cached blob %s is corrupted; fetching it again\n",
                 name.c_str(), etag.c_str());
    fs::remove(blob);
  }
  if (!fs::exists(blob)) {
    fs::path partial = blob;
    partial += ".incomplete";
    int mismatches = 0;
    for (int attempt = 0;; ++attempt) {
      uint64_t have = fs::exists(partial) ? fs::file_size(partial) : 0;
      if (size > 0 && have > size) {
        fs::remove(partial);
        have = 0;
      }
      progress.done.fetch_add(have, std::memory_order_relaxed);
      try {
        if (size == 0 || have < size) http.download(location, partial.string(), have, progress.done);
        if (!fs::exists(partial)) std::ofstream(partial, std::ios::binary);  // empty file
      } catch (const Error& e) {
        progress.done.fetch_sub(fs::exists(partial) ? fs::file_size(partial) : 0);
        // I/O errors (disk full) will not heal by retrying; a dropped connection may.
        if (std::strstr(e.what(), "write failed") != nullptr || attempt >= 4) throw;
        std::fprintf(stderr, "kexa pull: %s: %s; resuming\n", name.c_str(), e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(200 * (attempt + 1)));
        continue;
      }
      uint64_t got = fs::file_size(partial);
      bool ok = (size == 0 || got == size) && blob_matches(partial, etag);
      if (ok) break;
      progress.done.fetch_sub(got);
      fs::remove(partial);
      if (++mismatches >= 2) {
        fail(ref.repo, "/", name, ": downloaded content does not match its hash ", etag,
             " (", got, " bytes, expected ", size, ") twice; giving up");
      }
      std::fprintf(stderr, "kexa pull: %s: content does not match hash %s; fetching again\n",
                   name.c_str(), etag.c_str());
    }
    fs::rename(partial, blob);
  } else {
    progress.done.fetch_add(size, std::memory_order_relaxed);
  }

  fs::path link = repo_dir / "snapshots" / commit / name;
  fs::create_directories(link.parent_path());
  fs::path target = blob.lexically_relative(link.parent_path());
  fs::path tmp = link;
  tmp += ".tmp-link." + std::to_string(::getpid()) + "." +
         std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  fs::remove(tmp);
  fs::create_symlink(target, tmp);
  fs::rename(tmp, link);
  progress.files_done.fetch_add(1);
}

}  // namespace

std::optional<ModelRef> parse_model_ref(std::string_view spec) {
  std::string s(spec);
  if (s.find("..") != std::string::npos) return std::nullopt;
  size_t slash = s.find('/');
  if (slash == std::string::npos) return std::nullopt;
  size_t colon = s.find(':', slash);
  std::string org = s.substr(0, slash);
  std::string repo = s.substr(slash + 1, colon == std::string::npos ? std::string::npos : colon - slash - 1);
  std::string quant = colon == std::string::npos ? "" : s.substr(colon + 1);
  if (!valid_name_part(org, true) || !valid_name_part(repo, true)) return std::nullopt;
  if (colon != std::string::npos && !valid_name_part(quant, false)) return std::nullopt;
  return ModelRef{org + "/" + repo, quant};
}

Options options_from_env() {
  Options opt;
  if (!env("HF_ENDPOINT").empty()) opt.endpoint = env("HF_ENDPOINT");
  while (!opt.endpoint.empty() && opt.endpoint.back() == '/') opt.endpoint.pop_back();
  std::string home = env("HF_HOME");
  if (home.empty()) {
    std::string xdg = env("XDG_CACHE_HOME");
    home = !xdg.empty() ? xdg + "/huggingface" : env("HOME") + "/.cache/huggingface";
  }
  opt.cache_dir = !env("HF_HUB_CACHE").empty() ? env("HF_HUB_CACHE") : home + "/hub";
  opt.token = !env("HF_TOKEN").empty() ? env("HF_TOKEN") : env("HUGGING_FACE_HUB_TOKEN");
  if (opt.token.empty() && fs::exists(home + "/token")) opt.token = read_text(home + "/token");
  opt.offline = truthy(env("HF_HUB_OFFLINE"));
  return opt;
}

std::string pull(const ModelRef& ref, const Options& opt) {
  fs::path repo_dir = fs::path(opt.cache_dir) / repo_folder_name(ref.repo);
  if (opt.offline) return from_cache(ref, opt, repo_dir, "HF_HUB_OFFLINE is set");

  HttpClient http(opt.token);
  std::string api = opt.endpoint + "/api/models/" + ref.repo + "/revision/" +
                    url_encode_path(opt.revision) + "?blobs=true";
  HttpResponse info;
  try {
    info = http.get(api);
  } catch (const Error& e) {
    std::fprintf(stderr, "kexa: cannot reach %s (%s); using the cache\n", opt.endpoint.c_str(),
                 e.what());
    return from_cache(ref, opt, repo_dir, concat(opt.endpoint, " cannot be reached"));
  }
  if (info.status == 401 || info.status == 403) {
    fail(ref.repo, ": access denied (HTTP ", info.status,
         "): the repository is gated or private; set HF_TOKEN or pass --token");
  }
  if (info.status == 404) {
    fail(ref.repo, ": repository or revision '", opt.revision, "' not found on ", opt.endpoint,
         " (HTTP 404)");
  }
  if (info.status >= 400) fail(ref.repo, ": ", api, " answered HTTP ", info.status);
  nlohmann::json meta = nlohmann::json::parse(info.body, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains("sha") ||
      !meta["sha"].is_string() || !meta.contains("siblings") || !meta["siblings"].is_array()) {
    fail(api, ": unexpected answer (no sha/siblings)");
  }
  std::string commit = meta["sha"];
  if (!is_hex(commit, 40)) fail(api, ": commit '", commit, "' is not a 40-digit hash");
  std::vector<RemoteFile> files;
  for (const auto& s : meta["siblings"]) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) continue;
    std::string name = s["rfilename"];
    if (name.empty() || name.front() == '/' || name.find("..") != std::string::npos) {
      fail(api, ": refusing unsafe file name '", name, "'");
    }
    uint64_t size = s.value("size", uint64_t{0});
    if (s.contains("lfs") && s["lfs"].is_object()) size = s["lfs"].value("size", size);
    files.push_back({name, size});
  }
  Selection sel = select_files(files, ref, opt.include);

  fs::path snapshot = repo_dir / "snapshots" / commit;
  Progress progress;
  std::vector<std::string> todo;
  for (const std::string& f : sel.files) {
    for (const RemoteFile& r : files) {
      if (r.name == f) progress.total += r.size;
    }
    if (opt.verify_existing || !fs::exists(snapshot / f)) {
      todo.push_back(f);
    } else {
      for (const RemoteFile& r : files) {
        if (r.name == f) progress.done += r.size;
      }
    }
  }
  progress.files = static_cast<int>(todo.size());

  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::thread reporter;
  if (opt.progress && !todo.empty()) {
    reporter = std::thread([&] {
      auto start = std::chrono::steady_clock::now();
      uint64_t start_bytes = progress.done.load();
      bool tty = ::isatty(2) != 0;
      std::unique_lock<std::mutex> lk(mu);
      while (!cv.wait_for(lk, std::chrono::milliseconds(tty ? 250 : 2000), [&] { return finished; })) {
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double done = static_cast<double>(progress.done.load());
        double rate = (done - static_cast<double>(start_bytes)) / std::max(secs, 1e-3);
        double left = static_cast<double>(progress.total) - done;
        std::fprintf(stderr, "%spull %s: %s / %s  %s/s  ETA %.0f s  [%d/%d files]%s",
                     tty ? "\r" : "", ref.repo.c_str(), human_bytes(done).c_str(),
                     human_bytes(static_cast<double>(progress.total)).c_str(),
                     human_bytes(rate).c_str(), rate > 0 ? std::max(left, 0.0) / rate : 0.0,
                     progress.files_done.load(), progress.files, tty ? "   " : "\n");
      }
      if (tty) std::fprintf(stderr, "\n");
    });
  }

  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::string first_error;
  auto worker = [&] {
    for (size_t i = next++; i < todo.size(); i = next++) {
      try {
        fetch_file(http, opt, ref, repo_dir, commit, todo[i], opt.verify_existing, progress);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> g(error_mu);
        if (first_error.empty()) first_error = e.what();
      }
    }
  };
  std::vector<std::thread> workers;
  int n_workers = std::max(1, std::min<int>(opt.parallel, static_cast<int>(todo.size())));
  for (int i = 0; i < n_workers; ++i) workers.emplace_back(worker);
  for (std::thread& t : workers) t.join();
  {
    std::lock_guard<std::mutex> g(mu);
    finished = true;
  }
  cv.notify_all();
  if (reporter.joinable()) reporter.join();
  if (!first_error.empty()) throw Error(first_error);

  if (opt.revision != commit) write_text_atomically(repo_dir / "refs" / opt.revision, commit);
  return (sel.entry.empty() ? snapshot : snapshot / sel.entry).string();
}

std::string resolve_model_path(const std::string& spec) {
  if (spec.empty() || fs::exists(spec)) return spec;
  std::optional<ModelRef> ref = parse_model_ref(spec);
  if (!ref) return spec;
  Options opt = options_from_env();
  opt.verify_existing = false;
  return pull(*ref, opt);
}

}  // namespace kexa::hub
