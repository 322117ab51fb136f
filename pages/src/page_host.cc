// Rendering the page modules of a topology; see page_host.h.
#include "modgraph/pages/page_host.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "modgraph/context/request_context.h"

namespace modgraph::pages {

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
    const auto* api = (*page)->api<PageApi>();
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
    if ((*document)->api<DocumentApi>() == nullptr) {
      return absl::InvalidArgumentError(fmt::format(
          "{} is [server] document but exports no document API (DocumentApi); name a module that "
          "wraps pages in a document or remove document",
          (*document)->name()));
    }
    host->document_ = spec.document;
  }
  return host;
}

const PageHost::Page* PageHost::Find(std::string_view path) const {
  auto page =
      std::find_if(pages_.begin(), pages_.end(), [&](const Page& p) { return p.route == path; });
  return page == pages_.end() ? nullptr : &*page;
}

PageHost::Rendering PageHost::Begin(const Page& page) const {
  Rendering rendering;
  // Outside a request scope nothing else keeps the copies this render uses mapped.
  if (!in_request_scope()) rendering.hold = HoldRequestGeneration();
  // The page's current instance: after a reload, its new copy.
  const Instance* instance = pages_env_->Find(page.module_id);
  const auto* api = instance != nullptr ? instance->api<PageApi>() : nullptr;
  if (api != nullptr && api->render != nullptr) rendering.api = api;
  rendering.lost_mark = Sentinel::Global().lost_context_mark();
  return rendering;
}

RenderedPage PageHost::Finish(const Rendering& rendering, const PageResult& result) const {
  if (std::optional<LostContext> lost =
          Sentinel::Global().StrictLostContextSince(rendering.lost_mark)) {
    return RenderedPage{.status = 500,
                        .content_type = "text/plain; charset=utf-8",
                        .body = fmt::format("{}\n", LostContextMessage(*lost))};
  }
  // The document module's current instance: after a reload, its new copy.
  const Instance* entry =
      entry_env_ != nullptr && !document_.empty() ? entry_env_->Find(document_) : nullptr;
  std::string body = entry != nullptr
                         ? entry->api<DocumentApi>()->document(result.head, result.body)
                         : fmt::format("<!DOCTYPE html><html><head>{}</head><body>{}</body></html>",
                                       result.head, result.body);
  return RenderedPage{.status = result.status, .body = std::move(body)};
}

RenderedPage PageHost::NotFound(std::string_view path) {
  return RenderedPage{.status = 404,
                      .content_type = "text/plain; charset=utf-8",
                      .body = fmt::format("no page at {}\n", path)};
}

RenderedPage PageHost::NotLoaded(const Page& page) {
  return RenderedPage{.status = 503,
                      .content_type = "text/plain; charset=utf-8",
                      .body = fmt::format("{} is not loaded (it was unloaded, or its module no "
                                          "longer exports a page); reload or import it\n",
                                          page.instance)};
}

RenderedPage PageHost::StrictFailure(const StrictPolicyError& error) {
  return RenderedPage{.status = 500,
                      .content_type = "text/plain; charset=utf-8",
                      .body = fmt::format("{}\n", error.what())};
}

std::vector<std::string> PageHost::routes() const {
  std::vector<std::string> out;
  for (const Page& page : pages_) out.push_back(page.route);
  return out;
}

}  // namespace modgraph::pages
