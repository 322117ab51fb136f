// The `concurrent-router` page: renders the pathname and query as the page sees
// them through this environment's router (what useRouter() returns). The server
// sets the route before rendering; the page reads it after awaiting work.
#include <fmt/format.h>

#include "modgraph/loader/sdk.h"
#include "modgraph/modules/router.h"
#include "modgraph/pages/page.h"

namespace modgraph::plugins {
namespace {

const modules::RouterApi* g_router = nullptr;

boost::asio::awaitable<pages::PageResult> Render(pages::PageRequest request) {
  g_router->set_route(request.path, request.query);
  co_await request.async_work();
  const std::map<std::string, std::string> query = g_router->query();
  std::string items;
  for (const auto& [key, value] : query) {
    items += fmt::format("<li data-key=\"{}\">{}</li>", pages::EscapeHtml(key),
                         pages::EscapeHtml(value));
  }
  auto id = query.find("id");
  co_return pages::PageResult{
      .status = 200,
      .head = "<title>router</title>",
      .body = fmt::format("<p data-testid=\"req-id\">req-{}</p><p data-testid=\"pathname\">{}</p>"
                          "<ul data-testid=\"query\">{}</ul>",
                          pages::EscapeHtml(id == query.end() ? "none" : id->second),
                          pages::EscapeHtml(g_router->pathname()), items)};
}

void Init(sdk::ModuleContext& context) {
  g_router = &context.import_module<modules::RouterApi>("router");
}

const char* const kImports[] = {"router"};
const pages::PageApi kPage{"/concurrent-router", &Render};

}  // namespace
}  // namespace modgraph::plugins

MODGRAPH_MODULE(concurrent_router, {.id = "concurrent-router",
                                    .imports = modgraph::plugins::kImports,
                                    .api = &modgraph::plugins::kPage,
                                    .init = &modgraph::plugins::Init,
                                    .teardown = &::modgraph::sdk::nothing_to_stop});
