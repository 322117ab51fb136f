// A host embedding modgraph: one isolated `ssr` environment whose module roots
// are this project's modules and the installed framework modules. Importing
// `greeting` must resolve its import of `head` to ssr#head.
#include <cstdio>
#include <memory>
#include <string>

#include "greeting.h"
#include "modgraph/environments/topology.h"
#include "modgraph/server/http_server.h"
#include "modgraph/testing/load_client.h"

int main() {
  modgraph::TopologySpec spec;
  spec.name = "embed";
  spec.origin = "embed_host";
  spec.environments.push_back({.name = "ssr",
                               .mode = modgraph::EnvironmentMode::kIsolated,
                               .module_roots = {EMBED_MODULE_DIR, EMBED_FRAMEWORK_MODULE_DIR},
                               .entry_modules = {"greeting"}});
  auto topology = modgraph::Topology::Create(std::move(spec));
  if (!topology.ok()) {
    std::fprintf(stderr, "embed_host: %s\n", std::string(topology.status().message()).c_str());
    return 1;
  }
  for (const auto& error : (*topology)->LoadEntries()) {
    std::fprintf(stderr, "embed_host: %s\n", std::string(error.message()).c_str());
    return 1;
  }
  const modgraph::Instance* greeting = (*topology)->environment("ssr")->Find("greeting");
  if (greeting == nullptr || greeting->name() != "ssr#greeting") {
    std::fprintf(stderr, "embed_host: ssr#greeting is not loaded\n");
    return 1;
  }
  if (greeting->imports().size() != 1 || greeting->imports()[0]->name() != "ssr#head") {
    std::fprintf(stderr, "embed_host: greeting's import did not resolve to ssr#head\n");
    return 1;
  }
  if (!(*topology)->registry().Find("ssr#head")) {
    std::fprintf(stderr, "embed_host: the registry has no ssr#head\n");
    return 1;
  }
  const std::string head = greeting->api<GreetingApi>()->greet("embed");
  if (head.find("<title>hello embed</title>") == std::string::npos) {
    std::fprintf(stderr, "embed_host: unexpected head '%s'\n", head.c_str());
    return 1;
  }
  // Serve it: one page, one request scope per request, loopback only.
  modgraph::server::Router router;
  (void)router.Add(
      "/greet",
      [greeting](const modgraph::server::Request& request)
          -> boost::asio::awaitable<modgraph::server::Response> {
        co_return modgraph::server::Response{
            .body = greeting->api<GreetingApi>()->greet(request.query.at("name").c_str())};
      });
  auto server = modgraph::server::HttpServer::Start({}, std::move(router));
  if (!server.ok()) {
    std::fprintf(stderr, "embed_host: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  auto page = modgraph::testing::Fetch((*server)->port(), "/greet?name=http");
  (*server)->Stop();
  if (!page.ok() || page->status != 200 ||
      page->body.find("<title>hello http</title>") == std::string::npos) {
    std::fprintf(stderr, "embed_host: /greet over HTTP failed\n");
    return 1;
  }
  std::printf("embed_host: ssr#greeting imports %s; head renders %s; served over HTTP\n",
              greeting->imports()[0]->name().c_str(), head.c_str());
  return 0;
}
