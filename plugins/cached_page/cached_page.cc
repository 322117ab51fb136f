// The `cached-page` page: a "use cache" function whose entries are keyed by the
// deployment id (then the build id). `?deployment=D` sets the request's own id.
#include <fmt/format.h>

#include "modgraph/loader/sdk.h"
#include "modgraph/modules/cache_runtime.h"
#include "modgraph/pages/page.h"

namespace modgraph::plugins {
namespace {

const modules::CacheRuntimeApi* g_cache = nullptr;

std::string ExpensiveGreeting(std::string_view args) { return fmt::format("hello {}", args); }

boost::asio::awaitable<pages::PageResult> Render(pages::PageRequest request) {
  if (auto deployment = request.query.find("deployment"); deployment != request.query.end()) {
    if (!g_cache->set_request_deployment_id(deployment->second)) {
      co_return pages::PageResult{.status = 400, .head = "", .body = "invalid deployment id"};
    }
  }
  auto name = request.query.find("name");
  const std::string args = pages::EscapeHtml(name == request.query.end() ? "world" : name->second);
  co_await request.async_work();
  co_return pages::PageResult{
      .status = 200,
      .head = "<title>cached</title>",
      .body = fmt::format("<p data-testid=\"value\">{}</p><p data-testid=\"seed\">{}</p>",
                          g_cache->use_cache("greeting", args, &ExpensiveGreeting),
                          g_cache->key_seed())};
}

void Init(sdk::ModuleContext& context) {
  g_cache = &context.import_module<modules::CacheRuntimeApi>("cache-runtime");
}

const char* const kImports[] = {"cache-runtime"};
const pages::PageApi kPage{"/cached", &Render};

}  // namespace
}  // namespace modgraph::plugins

MODGRAPH_MODULE(cached_page, {.id = "cached-page",
                              .imports = modgraph::plugins::kImports,
                              .api = &modgraph::plugins::kPage,
                              .init = &modgraph::plugins::Init,
                              .teardown = &::modgraph::sdk::nothing_to_stop});
