#include "modgraph/server/http.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modgraph/server/internal/spare_nodes.h"
#include "modgraph/server/router.h"

namespace modgraph::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(DecodeTarget, SplitsAndDecodesPathAndQuery) {
  std::string path;
  std::map<std::string, std::string> query;
  ASSERT_TRUE(DecodeTarget("/a%20b?x=1&y=two+words&&flag&eq=%3D%26#frag", path, query).ok());
  EXPECT_EQ(path, "/a b");
  EXPECT_THAT(query, ElementsAre(Pair("eq", "=&"), Pair("flag", ""), Pair("x", "1"),
                                 Pair("y", "two words")));
}

TEST(DecodeTarget, PlusIsLiteralInPathAndLastRepeatWins) {
  std::string path;
  std::map<std::string, std::string> query;
  ASSERT_TRUE(DecodeTarget("/c++?k=1&k=2", path, query).ok());
  EXPECT_EQ(path, "/c++");
  EXPECT_THAT(query, ElementsAre(Pair("k", "2")));
}

// A connection reuses its Request's map nodes, but keeps no more of them than
// a usual request needs: an idle keep-alive connection must not hold what its
// largest request carried.
TEST(SpareNodes, KeepsABoundedNumberOfSmallNodesAndReusesThem) {
  server_internal::SpareNodes spare;
  std::map<std::string, std::string> headers;
  for (int i = 0; i < 100; ++i) spare.Insert(headers, "x-" + std::to_string(i), "v");
  headers["x-big"] = std::string(64 * 1024, 'b');
  spare.Reclaim(headers);
  EXPECT_TRUE(headers.empty());
  EXPECT_EQ(spare.size(), server_internal::SpareNodes::kMaxNodes);

  std::map<std::string, std::string> query;
  server_internal::SpareNodes small;
  small.Insert(query, "id", std::string(64 * 1024, 'q'));
  small.Insert(query, "page", "2");
  small.Reclaim(query);
  EXPECT_EQ(small.size(), 1u);  // the node holding 64 KiB was freed
  const std::string name = "b";
  small.Assign(query, name, "3");
  EXPECT_EQ(small.size(), 0u);
  EXPECT_THAT(query, ElementsAre(Pair("b", "3")));  // nothing of the reused node is left
}

TEST(SpareNodes, TrimKeptFreesALargeBodyAndKeepsASmallOne) {
  Request request;
  request.body.assign(1 << 20, 'x');
  request.path = "/page";
  server_internal::TrimKept(request);
  EXPECT_EQ(request.body.capacity(), std::string().capacity());
  EXPECT_EQ(request.path, "/page");
}

TEST(DecodeTarget, RejectsMalformedTargets) {
  std::string path;
  std::map<std::string, std::string> query;
  for (const char* bad : {"", "page", "http://example.com/", "/a%2", "/a%zz", "/?x=%g1", "/a%00"}) {
    absl::Status status = DecodeTarget(bad, path, query);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(DecodeTarget("/a%zz", path, query).message()),
              HasSubstr("malformed percent escape at offset 2"));
}

Handler Constant(std::string body) {
  return [body](const Request&) -> boost::asio::awaitable<Response> {
    co_return Response{.body = body};
  };
}

TEST(Router, FindsExactPathsOnly) {
  Router router;
  ASSERT_TRUE(router.Add("/", Constant("root")).ok());
  ASSERT_TRUE(router.Add("/page", Constant("page")).ok());
  EXPECT_NE(router.Find("/"), nullptr);
  EXPECT_NE(router.Find("/page"), nullptr);
  EXPECT_EQ(router.Find("/page/"), nullptr);
  EXPECT_EQ(router.Find("/pag"), nullptr);
  EXPECT_EQ(router.Find(""), nullptr);
  EXPECT_THAT(router.paths(), ElementsAre("/", "/page"));
}

TEST(Router, RejectsDuplicatesBadPathsAndEmptyHandlers) {
  Router router;
  ASSERT_TRUE(router.Add("/page", Constant("a")).ok());
  absl::Status duplicate = router.Add("/page", Constant("b"));
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(duplicate.message()), HasSubstr("'/page'"));
  EXPECT_EQ(router.Add("page", Constant("c")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("/empty", Handler()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.size(), 1u);
}

}  // namespace
}  // namespace modgraph::server
