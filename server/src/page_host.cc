// Serving page plugins from a topology; see page_host.h.
#include "modgraph/server/page_host.h"

#include <fmt/format.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <system_error>

#include "modgraph/context/request_context.h"
#include "modgraph/modules/server_entry.h"
#include "modgraph/registry/sentinel.h"

namespace modgraph::server {

absl::StatusOr<std::unique_ptr<PageHost>> PageHost::Create(Topology& topology) {
  const ServerSpec& spec = topology.spec().server;
  Environment* pages_env = topology.environment(spec.pages_environment);
  if (pages_env == nullptr) {
    return absl::NotFoundError(fmt::format(
        "topology '{}' serves pages from environment '{}', which it does not declare; set "
        "[server] pages_environment to one of its environments",
        topology.spec().name, spec.pages_environment));
  }
  if (spec.pages.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("topology '{}' declares no pages; list page modules in [server] pages",
                    topology.spec().name));
  }
  std::unique_ptr<PageHost> host(new PageHost());
  host->pages_environment_ = spec.pages_environment;
  for (const std::string& id : spec.pages) {
    absl::StatusOr<Instance*> page = pages_env->Import(id);
    if (!page.ok()) return page.status();
    const auto* api = (*page)->api<plugins::PageApi>();
    if (api == nullptr || api->route == nullptr || api->render == nullptr) {
      return absl::InvalidArgumentError(fmt::format(
          "{} is listed in [server] pages but exports no page (PageApi); remove it from pages",
          (*page)->name()));
    }
    host->pages_.push_back({api->route, id, (*page)->name()});
  }
  host->pages_env_ = pages_env;
  host->work_ms_ = spec.work_ms;
  host->entry_env_ = topology.environment(spec.entry_environment);
  if (!spec.document.empty()) {
    Environment* entry_env = topology.environment(spec.entry_environment);
    if (entry_env == nullptr) {
      return absl::InvalidArgumentError(fmt::format(
          "[server] document = '{}' needs entry_environment to name an environment of topology "
          "'{}' (it is '{}'); set entry_environment",
          spec.document, topology.spec().name, spec.entry_environment));
    }
    // Through the import system, as any module: loaded with its imports if
    // the environment's entries did not load it already.
    absl::StatusOr<Instance*> document = entry_env->Import(spec.document);
    if (!document.ok()) return document.status();
    if ((*document)->api<modules::ServerEntryApi>() == nullptr) {
      return absl::InvalidArgumentError(fmt::format(
          "{} is [server] document but exports no document API; name a module that wraps pages "
          "(like server-entry) or remove document",
          (*document)->name()));
    }
    host->document_ = spec.document;
  }
  return host;
}

boost::asio::awaitable<Response> PageHost::Render(const Request& request, AsyncWork work) const {
  auto page = std::find_if(pages_.begin(), pages_.end(),
                           [&](const Page& p) { return p.route == request.path; });
  if (page == pages_.end()) {
    return [](std::string path) -> boost::asio::awaitable<Response> {
      co_return Response{.status = 404,
                         .content_type = "text/plain; charset=utf-8",
                         .body = fmt::format("no page at {}\n", path)};
    }(request.path);
  }
  return RenderPage(*page, request, std::move(work));
}

namespace {

boost::asio::awaitable<Response> BadParameter(absl::Status status) {
  co_return Response{.status = 400,
                     .content_type = "text/plain; charset=utf-8",
                     .body = fmt::format("400 bad request: {}\n", std::string(status.message()))};
}

}  // namespace

boost::asio::awaitable<Response> PageHost::RenderPage(const Page& page, const Request& request,
                                                      AsyncWork work) const {
  // Outside a request scope nothing else keeps the copies this render uses mapped.
  std::shared_ptr<const void> hold;
  if (!in_request_scope()) hold = HoldRequestGeneration();
  // The page's current instance: after a reload, its new copy.
  const Instance* instance = pages_env_->Find(page.module_id);
  const auto* api = instance != nullptr ? instance->api<plugins::PageApi>() : nullptr;
  if (api == nullptr || api->render == nullptr) {
    co_return Response{.status = 503,
                       .content_type = "text/plain; charset=utf-8",
                       .body = fmt::format("{} is not loaded (it was unloaded, or its module no "
                                           "longer exports a page); reload or import it\n",
                                           page.instance)};
  }
  plugins::PageRequest page_request{.path = request.path,
                                    .query = request.query,
                                    .request_id = request.id,
                                    .async_work = std::move(work)};
  plugins::PageResult result;
  // A lost context under strict is recorded, not thrown (the thread that lost
  // it may not carry exceptions): every request in flight then fails.
  const std::uint64_t lost_mark = Sentinel::Global().lost_context_mark();
  try {
    result = co_await api->render(std::move(page_request));
  } catch (const StrictPolicyError& error) {
    co_return Response{.status = 500,
                       .content_type = "text/plain; charset=utf-8",
                       .body = fmt::format("{}\n", error.what())};
  }
  if (std::optional<LostContext> lost = Sentinel::Global().StrictLostContextSince(lost_mark)) {
    co_return Response{.status = 500,
                       .content_type = "text/plain; charset=utf-8",
                       .body = fmt::format("{}\n", LostContextMessage(*lost))};
  }
  // The document module's current instance: after a reload, its new copy.
  const Instance* entry =
      entry_env_ != nullptr && !document_.empty() ? entry_env_->Find(document_) : nullptr;
  std::string body = entry != nullptr
                         ? entry->api<modules::ServerEntryApi>()->document(result.head, result.body)
                         : fmt::format("<!DOCTYPE html><html><head>{}</head><body>{}</body></html>",
                                       result.head, result.body);
  co_return Response{.status = result.status, .body = std::move(body)};
}

Router PageHost::MakeRouter(WorkFactory make_work) const {
  Router router;
  for (const Page& page : pages_) {
    // The router has found the page: render it without looking it up again.
    // A duplicate route would be a topology mistake already visible in routes().
    (void)router.Add(
        page.route,
        [this, &page, make_work](const Request& request) -> boost::asio::awaitable<Response> {
          absl::StatusOr<AsyncWork> work = make_work(request);
          if (!work.ok()) return BadParameter(work.status());
          return RenderPage(page, request, *std::move(work));
        });
  }
  return router;
}

namespace {

// Waits `?delay_ms=N` if the request asks, else `default_ms`; 0 yields once.
absl::StatusOr<PageHost::AsyncWork> WaitFor(const Request& request, int default_ms) {
  int delay_ms = default_ms;
  if (auto it = request.query.find("delay_ms"); it != request.query.end()) {
    const std::string& text = it->second;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), delay_ms);
    if (error != std::errc() || end != text.data() + text.size() || delay_ms < 0 ||
        delay_ms > PageHost::kMaxDelayMs) {
      return absl::InvalidArgumentError(
          fmt::format("delay_ms must be a whole number of milliseconds from 0 to {}; got '{}'",
                      PageHost::kMaxDelayMs, text.size() > 40 ? text.substr(0, 40) + "..." : text));
    }
  }
  return [delay_ms]() -> boost::asio::awaitable<void> {
    if (delay_ms <= 0) {
      // Yield through the awaiting coroutine's own executor (the handler's
      // associated executor): the same hop as naming the executor, without the
      // type-erased work dispatcher Asio adds for an explicit one
      // (docs/benchmarks.md, "Per coroutine resumption").
      co_await boost::asio::post(boost::asio::use_awaitable);
    } else {
      boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor,
                                      std::chrono::milliseconds(delay_ms));
      co_await timer.async_wait(boost::asio::use_awaitable);
    }
  };
}

}  // namespace

absl::StatusOr<PageHost::AsyncWork> PageHost::YieldOnce(const Request& request) {
  return WaitFor(request, 0);
}

PageHost::WorkFactory PageHost::TopologyWork() const {
  return [work_ms = work_ms_](const Request& request) { return WaitFor(request, work_ms); };
}

std::vector<std::string> PageHost::routes() const {
  std::vector<std::string> out;
  for (const Page& page : pages_) out.push_back(page.route);
  return out;
}

}  // namespace modgraph::server
