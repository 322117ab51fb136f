// The `request-store-page` page: keeps a per-request value (think: a database
// client) in request_store(), awaits work, and reads it back.
#include <fmt/format.h>

#include "modgraph/loader/sdk.h"
#include "modgraph/modules/request_store.h"
#include "modgraph/pages/page.h"

namespace modgraph::plugins {
namespace {

const modules::RequestStoreApi* g_store = nullptr;

boost::asio::awaitable<pages::PageResult> Render(pages::PageRequest request) {
  auto id = request.query.find("id");
  const std::string value = pages::EscapeHtml(id == request.query.end() ? "none" : id->second);
  g_store->store().set<std::string>("db-client", fmt::format("req-{}", value));
  co_await request.async_work();
  std::shared_ptr<std::string> client = g_store->store().get<std::string>("db-client");
  co_return pages::PageResult{
      .status = 200,
      .head = "<title>request store</title>",
      .body = fmt::format("<p data-testid=\"client\">{}</p>", client ? *client : "missing")};
}

void Init(sdk::ModuleContext& context) {
  g_store = &context.import_module<modules::RequestStoreApi>("request-store");
}

const char* const kImports[] = {"request-store"};
const pages::PageApi kPage{"/request-store", &Render};

}  // namespace
}  // namespace modgraph::plugins

MODGRAPH_MODULE(request_store_page, {.id = "request-store-page",
                                     .imports = modgraph::plugins::kImports,
                                     .api = &modgraph::plugins::kPage,
                                     .init = &modgraph::plugins::Init,
                                     .teardown = &::modgraph::sdk::nothing_to_stop});
