#include "core/preview.h"

#include <gtest/gtest.h>

namespace outbound::core {
namespace {

const std::string kEllipsis = "\xE2\x80\xA6";

// Code points of valid UTF-8.
std::size_t CodePoints(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

TEST(SummaryPreviewTest, ShortSummaryIsWhole) {
  EXPECT_EQ(SummaryPreview(""), "");
  EXPECT_EQ(SummaryPreview("Replaced the filter."), "Replaced the filter.");
}

TEST(SummaryPreviewTest, Exactly200IsWhole) {
  std::string s(200, 'a');
  EXPECT_EQ(SummaryPreview(s), s);
  std::string words;
  while (words.size() < 200) words += "word ";
  words.resize(200);
  EXPECT_EQ(SummaryPreview(words), words);
}

TEST(SummaryPreviewTest, LongCutAtLastWhitespace) {
  std::string s;
  for (int i = 0; i < 40; ++i) s += "abcdef ";  // 280 code points
  std::string p = SummaryPreview(s);
  EXPECT_TRUE(EndsWith(p, "abcdef" + kEllipsis)) << p;
  EXPECT_LE(CodePoints(p), 200u);
  // 28 whole words (28 * 7 = 196 chars, minus the trailing space) + "…"; the 29th word would
  // end at code point 202.
  EXPECT_EQ(p, s.substr(0, 195) + kEllipsis);
}

TEST(SummaryPreviewTest, WhitespaceRightAtTheLimitKeepsTheWholeWord) {
  // 199 letters then a space: the word ends exactly at the limit.
  std::string s = std::string(199, 'x') + " tail of the summary";
  EXPECT_EQ(SummaryPreview(s), std::string(199, 'x') + kEllipsis);
}

TEST(SummaryPreviewTest, TrimsWhitespaceRunBeforeTheCut) {
  std::string s = std::string(150, 'a') + "   \t\n  " + std::string(100, 'b');
  EXPECT_EQ(SummaryPreview(s), std::string(150, 'a') + kEllipsis);
}

TEST(SummaryPreviewTest, LongWithoutWhitespaceIsHardCut) {
  std::string s(300, 'z');
  std::string p = SummaryPreview(s);
  EXPECT_EQ(p, std::string(199, 'z') + kEllipsis);
  EXPECT_EQ(CodePoints(p), 200u);
}

TEST(SummaryPreviewTest, LeadingWhitespaceOnlyMeansHardCut) {
  std::string s = " " + std::string(300, 'z');
  EXPECT_EQ(SummaryPreview(s), " " + std::string(198, 'z') + kEllipsis);
}

TEST(SummaryPreviewTest, MultibyteCountsCodePoints) {
  // 200 two-byte characters fit (400 bytes).
  std::string ue;
  for (int i = 0; i < 200; ++i) ue += "\xC3\xBC";  // ü
  EXPECT_EQ(SummaryPreview(ue), ue);
  // 201 do not: hard cut after 199 characters, never inside one.
  std::string longer = ue + "\xC3\xBC";
  std::string p = SummaryPreview(longer);
  EXPECT_EQ(p, ue.substr(0, 398) + kEllipsis);
  EXPECT_EQ(CodePoints(p), 200u);
}

TEST(SummaryPreviewTest, FourByteCharactersNotSplit) {
  std::string s;
  for (int i = 0; i < 250; ++i) s += "\xF0\x9F\x94\xA7";  // 🔧
  std::string p = SummaryPreview(s);
  EXPECT_EQ(CodePoints(p), 200u);
  EXPECT_EQ(p.size(), 199u * 4 + 3);
  EXPECT_TRUE(EndsWith(p, kEllipsis));
}

TEST(SummaryPreviewTest, MixedScriptWordBoundary) {
  std::string word = "Prüfung";  // 7 code points, 8 bytes
  std::string s;
  for (int i = 0; i < 40; ++i) s += word + " ";  // 320 code points
  std::string p = SummaryPreview(s);
  // 25 words + 24 spaces = 199 code points fit before the limit.
  std::string expected;
  for (int i = 0; i < 25; ++i) expected += (i ? " " : "") + word;
  EXPECT_EQ(p, expected + kEllipsis);
}

TEST(SummaryPreviewTest, UnicodeWhitespaceIsABoundary) {
  std::string s = std::string(100, 'a') + "\xE3\x80\x80" + std::string(150, 'b');  // U+3000
  EXPECT_EQ(SummaryPreview(s), std::string(100, 'a') + kEllipsis);
}

TEST(SummaryPreviewTest, InvalidUtf8DoesNotCrashAndStaysValid) {
  std::string bad = std::string("\xC3", 1) + std::string(300, '\xFF') + "\xE2\x82";
  std::string p = SummaryPreview(bad);
  EXPECT_TRUE(EndsWith(p, kEllipsis));
  EXPECT_EQ(CodePoints(p), 200u);
  EXPECT_EQ(SummaryPreview(std::string("ab\xC3", 3)), "ab\xEF\xBF\xBD");
  EXPECT_EQ(SummaryPreview(std::string("\xED\xA0\x80", 3)).size(), 9u);  // surrogate: 3 × U+FFFD
}

TEST(SummaryPreviewTest, SmallLimits) {
  EXPECT_EQ(SummaryPreview("hello world", 5), "hell" + kEllipsis);
  EXPECT_EQ(SummaryPreview("hi there", 5), "hi" + kEllipsis);
  EXPECT_EQ(SummaryPreview("hello", 1), kEllipsis);
  EXPECT_EQ(SummaryPreview("hello", 0), "");
}

}  // namespace
}  // namespace outbound::core
