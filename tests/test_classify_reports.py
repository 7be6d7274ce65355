"""Reports the classifier must get right, read as a specification of its behaviour."""

from __future__ import annotations

import pytest

from services.classifier.classify import Classifier
from services.classifier.gazetteer import builtin_gazetteer
from services.classifier.rules import builtin_rule_set
from shared.messages import Severity, Signal
from tests.factories import make_report

SAMPLE = (
    "Renewed fighting along the Sa Kaeo\u2013Banteay Meanchey frontier has followed the collapse "
    "of a previous truce, raising concerns about the humanitarian toll and broader regional "
    'stability. U.S. Secretary of State Marco Rubio told reporters Washington is "cautiously '
    'optimistic" that a new ceasefire could be achieved imminently, as both sides face mounting '
    "international pressure to halt hostilities and resume negotiations. Fresh clashes have "
    "displaced hundreds of thousands and inflicted casualties on both sides."
)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier((builtin_rule_set(),), builtin_gazetteer())


def classify(classifier: Classifier, text: str, title: str = "") -> Signal:
    return classifier.classify(make_report(text=text, title=title, url=None))


def phrases(signal: Signal, kind: str) -> list[str]:
    return [e.phrase.lower() for e in signal.evidence if e.kind == kind]


class TestTheBorderReport:
    def test_escalation_is_primary_and_high(self, classifier: Classifier) -> None:
        """Renewed fighting after a collapsed truce is an escalation of high severity or more."""
        signal = classify(classifier, SAMPLE)
        assert signal.label == "escalation"
        assert signal.severity >= Severity.HIGH
        assert signal.flags[0].kind == "escalation"
        assert signal.flags[0].modality == "event"

    def test_escalation_evidence(self, classifier: Classifier) -> None:
        """Fighting, the truce's collapse, clashes and displacement are the evidence."""
        evidence = " | ".join(phrases(classify(classifier, SAMPLE), "escalation"))
        for expected in (
            "renewed fighting",
            "collapse of a previous truce",
            "clashes",
            "displaced",
        ):
            assert expected in evidence

    def test_ceasefire_is_flagged_as_intent(self, classifier: Classifier) -> None:
        """Hope of a new ceasefire is flagged, as intent, not as an agreement."""
        signal = classify(classifier, SAMPLE)
        ceasefire = [flag for flag in signal.flags if flag.kind == "ceasefire"]
        assert len(ceasefire) == 1
        assert ceasefire[0].modality == "intent"
        assert all(e.rule != "ceasefire.agreement" for e in signal.evidence)

    def test_where_and_who(self, classifier: Classifier) -> None:
        """Thailand and Cambodia are where; Sa Kaeo and Banteay Meanchey the provinces."""
        signal = classify(classifier, SAMPLE)
        assert signal.countries == ("KH", "TH")
        provinces = {(p.name, p.country) for p in signal.places if p.admin_level == 1}
        assert provinces == {("Sa Kaeo", "TH"), ("Banteay Meanchey", "KH")}
        assert any(a.country == "US" and a.kind == "government" for a in signal.actors)

    def test_displacement_read_as_at_least_200000(self, classifier: Classifier) -> None:
        """ "Displaced hundreds of thousands" is at least 200,000 people."""
        assert classify(classifier, SAMPLE).figures.displaced == 200_000

    def test_incident_key(self, classifier: Classifier) -> None:
        """The incident key names the kind, the countries and the main province."""
        assert classify(classifier, SAMPLE).incident_key == "escalation:KH-TH:sa-kaeo"


class TestLanguageThatMustNotFoolIt:
    @pytest.mark.parametrize(
        "text",
        [
            "Thailand accused Cambodian troops of having violated the ceasefire near Surin.",
            "The truce collapsed on Monday after artillery fire near the border.",
            "Peace talks broke down in Kuala Lumpur and both armies went on high alert.",
            "The rebels rejected the peace plan and vowed to fight on.",
            "There is no ceasefire in sight, the army spokesman said after the border clash.",
        ],
    )
    def test_reversals_are_escalation(self, classifier: Classifier, text: str) -> None:
        """A collapsed, violated or rejected ceasefire is escalation, not ceasefire."""
        signal = classify(classifier, text)
        assert signal.label == "escalation"
        assert signal.escalation > signal.ceasefire

    def test_calls_weigh_less_than_signatures(self, classifier: Classifier) -> None:
        """Calling for a ceasefire is weaker ceasefire evidence than signing one."""
        called = classify(classifier, "The UN called for a ceasefire between the two armies.")
        signed = classify(classifier, "The two armies signed a ceasefire in Kuala Lumpur.")
        assert called.label == signed.label == "ceasefire"
        assert called.ceasefire < signed.ceasefire
        assert called.flags[0].modality == "intent"
        assert signed.flags[0].modality == "event"

    def test_threat_is_weaker_than_attack(self, classifier: Classifier) -> None:
        """A threat to retaliate is escalation evidence, weaker and less severe than an attack."""
        threat = classify(classifier, "Cambodia threatened to retaliate against Thai troops.")
        attack = classify(classifier, "Thai troops shelled Cambodian positions, killing two.")
        assert threat.label == "escalation"
        assert threat.flags[0].modality == "threat"
        assert threat.escalation < attack.escalation
        assert threat.severity < attack.severity

    def test_history_weighs_less_than_a_new_event(self, classifier: Classifier) -> None:
        """A background mention of an old accord weighs less than a new agreement."""
        background = classify(classifier, "Officials met in Bangkok, citing the 2025 peace accord.")
        new = classify(classifier, "Thailand and Cambodia signed a peace accord on Tuesday.")
        assert background.label == "none"
        assert [e.modality for e in background.evidence] == ["background"]
        assert background.ceasefire < new.ceasefire

    @pytest.mark.parametrize(
        "text",
        [
            "Thailand and Cambodia meet in a clash of the titans in the SEA Games final.",
            "Mobile operators launched a price war over 5G plans in Bangkok.",
            "Washington and Beijing agreed to extend their trade truce by 90 days.",
            "The coalition partners agreed a political ceasefire over the budget.",
            "The Chiefs' offensive line struggled again as their attack stalled against the Bills.",
            "A ransomware attack shut down the ports operator's terminals in Laem Chabang.",
            "A gas explosion at a factory in Rayong killed four workers and injured 30.",
            "Relief trucks reached refugees sheltering at the border crossing with food and water.",
            "Police said the robber shot and killed a shopkeeper in Phnom Penh.",
            "Floods forced thousands to evacuate in Ubon Ratchathani; two people died.",
            "A dengue outbreak has killed 14 people in Battambang this year.",
            "Thousands of students marched peacefully in Bangkok over tuition fees.",
        ],
    )
    def test_not_armed_conflict_is_none(self, classifier: Classifier, text: str) -> None:
        """Crime, disasters, disease, sport, markets and peaceful protest are not signals."""
        assert classify(classifier, text).label == "none"

    def test_negated_event_does_not_count(self, classifier: Classifier) -> None:
        """A denied clash is not evidence of one."""
        signal = classify(classifier, "The army denied that its troops had clashed at the border.")
        assert "clashed" not in phrases(signal, "escalation")


class TestHeadlines:
    @pytest.mark.parametrize(
        ("text", "label"),
        [
            ("Rebels seize army base near the border after two days of fighting", "escalation"),
            ("Air force jets pound militant hideouts in the north", "escalation"),
            ("Gunmen abduct 12 fishermen off the coast, border guards say", "escalation"),
            ("Army says it downed 40 drones launched overnight", "escalation"),
            ("Government extends ceasefire with rebel faction for six months", "ceasefire"),
            ("Militia hands over heavy weapons to federal army under peace deal", "ceasefire"),
            ("Rebels release crew of seized cargo ship", "ceasefire"),
            ("Earthquake strikes near Mandalay, killing more than 1,000", "none"),
            ("Militants storm police station in Khyber Pakhtunkhwa", "escalation"),
            ("Armed groups blockade main road to Bangui, cutting off supplies", "escalation"),
            ("Armed groups lift blockade of Bangui highway after UN talks", "ceasefire"),
            ("Taliban, US sign deal in Doha on troop withdrawal", "ceasefire"),
            ("Venezuela, Guyana vow not to use force in Essequibo dispute", "ceasefire"),
            ("Derby clash ends in stalemate as Celtic, Rangers draw 1-1", "none"),
            ("Taiwan drills simulate Chinese amphibious invasion", "none"),
            (
                "Thai and Cambodian troops exchange fire near Preah Vihear, two wounded",
                "escalation",
            ),
            ("Cambodia hands back wounded Thai soldier captured during clashes", "ceasefire"),
            ("Ceasefire shattered as gunfire erupts hours after truce took effect", "escalation"),
            ("Army seals Chong Chom checkpoint, orders all crossings in Surin shut", "escalation"),
            ("Chong Chom checkpoint reopens to travellers after weeks of closure", "ceasefire"),
            ("Japan pledges emergency aid for displaced people on both sides", "none"),
            ("On 2 April 2022, a UN-brokered two-month truce took effect in Yemen.", "ceasefire"),
            ("Al-Shabaab militants storm Mogadishu hotel - Daily Nation", "escalation"),
            ("Pilots' union and airline reach truce in pay dispute - Times of India", "none"),
            (
                "Three soldiers embraced martyrdom as troops neutralised five terrorists",
                "escalation",
            ),
            ("Rangers and border guards hold flag meeting, agree to restore calm", "ceasefire"),
            ("The UN rejected a call for its peacekeeping forces to be deployed", "none"),
        ],
    )
    def test_present_tense_headlines(self, classifier: Classifier, text: str, label: str) -> None:
        """Feeds carry headlines in the present tense: 'seize', 'pound', 'extends'."""
        assert classify(classifier, text).label == label


class TestWhoSaysWhat:
    def test_a_complaint_about_an_attack_is_reported_and_weaker(
        self, classifier: Classifier
    ) -> None:
        """Evidence inside an accusation or complaint is a claim: reported, and it weighs less."""
        complaint = classify(
            classifier, "Laos complained to the United Nations over a helicopter gunship attack."
        )
        attack = classify(classifier, "A helicopter gunship attack hit a village in Laos.")
        assert complaint.label == "none"
        assert [e.modality for e in complaint.evidence] == ["reported"]
        assert complaint.escalation < attack.escalation
        assert attack.label == "escalation"

    def test_an_accused_truce_breach_is_still_escalation(self, classifier: Classifier) -> None:
        """An accused ceasefire breach still alerts, flagged as reported."""
        for text in (
            "Manila accused the rebels of breaching the truce.",
            "Manila accused the rebels of breaching the truce by firing mortars at a camp.",
        ):
            signal = classify(classifier, text)
            assert signal.label == "escalation", text
            assert signal.flags[0].modality == "reported", text

    def test_an_abbreviation_does_not_end_the_sentence(self, classifier: Classifier) -> None:
        """'since last year's U.S. invasion' is background: "U.S." does not hide "since"."""
        signal = classify(
            classifier,
            "Two exiled generals have lived in the embassy since last year's U.S. invasion.",
        )
        assert signal.label == "none"
        assert [e.modality for e in signal.evidence] == ["background"]

    def test_violating_an_old_accord_is_a_new_event(self, classifier: Classifier) -> None:
        """The date after "the truce agreement signed in May 2019" dates the truce, not the
        violation."""
        signal = classify(
            classifier,
            "Monitors said both armies were guilty of violating the truce agreement signed in "
            "May 2019.",
        )
        assert signal.label == "escalation"
        assert [(e.kind, e.modality) for e in signal.evidence] == [("escalation", "event")]

    def test_what_happened_weeks_ago_is_background(self, classifier: Classifier) -> None:
        """'kidnapped two months ago' and 'six months ago after clashes' date the event."""
        for text in (
            "The church asked for news of the aid workers kidnapped two months ago.",
            "The curfew imposed six months ago after ethnic clashes was lifted on Monday.",
        ):
            signal = classify(classifier, text)
            assert signal.label == "none", text
            assert {e.modality for e in signal.evidence if e.kind == "escalation"} == {
                "background"
            }, text

    def test_a_claim_counts_once(self, classifier: Classifier) -> None:
        """A complaint naming both a bomb and an attack is one claim, not two pieces of
        evidence, so it stays below the threshold."""
        signal = classify(classifier, "Delhi blamed Islamabad for the bomb attack on a bus depot.")
        assert [e.modality for e in signal.evidence] == ["reported", "reported"]
        assert signal.escalation == max(e.weight for e in signal.evidence)
        assert signal.label == "none"

    def test_a_trial_looks_back_on_the_whole_sentence(self, classifier: Classifier) -> None:
        """A verdict, trial or memorial frames everything after it as background."""
        signal = classify(
            classifier,
            "A court in Lima sentenced a retired colonel to 20 years for a massacre of "
            "villagers committed by an army patrol.",
        )
        assert signal.label == "none"
        assert {e.modality for e in signal.evidence} == {"background"}

    def test_the_lead_sets_the_frame(self, classifier: Classifier) -> None:
        """A report that opens on an anniversary or a complaint keeps that frame in the
        sentences that follow it."""
        anniversary = classify(
            classifier,
            "The town marked the 30th anniversary of the siege with a memorial service. "
            "Artillery shells killed more than 300 civilians there in 1993.",
        )
        complaint = classify(
            classifier,
            "The Security Council condemned an attack on a peacekeeping camp in Kidal. "
            "Gunmen on motorbikes killed four soldiers and wounded 12, the mission said.",
        )
        news = classify(
            classifier,
            "Gunmen on motorbikes killed four soldiers and wounded 12 at a camp in Kidal. "
            "The Security Council condemned the attack.",
        )
        assert anniversary.label == complaint.label == "none"
        assert {e.modality for e in anniversary.evidence} == {"background"}
        assert {e.modality for e in complaint.evidence} == {"reported"}
        assert news.label == "escalation"

    def test_a_headline_and_its_lead_tell_the_news(self, classifier: Classifier) -> None:
        """A short first sentence is a headline: the sentence after it is still the lead."""
        signal = classify(
            classifier,
            "China masses warships around Taiwan. Beijing deployed dozens of warships and "
            "fighter jets around the island on Saturday. Analysts called it a warning.",
        )
        assert signal.label == "escalation"
        deployed = next(e for e in signal.evidence if e.phrase.startswith("deployed"))
        assert deployed.weight == 0.5

    def test_the_lead_tells_the_news(self, classifier: Classifier) -> None:
        """Events after the lead weigh less: an air strike in the lead outweighs the truce
        talks the third sentence mentions, and the other way round."""
        strike = classify(
            classifier,
            "An air strike on a house in Rafah killed 13 members of one family on Monday. "
            "Neighbours pulled bodies from the rubble. Mediators said Hamas had signed a truce "
            "proposal.",
        )
        truce = classify(
            classifier,
            "Hamas and Israel signed a truce in Cairo on Monday. Hours earlier an air strike "
            "on a house in Rafah killed 13 members of one family.",
        )
        assert strike.label == "escalation"
        assert truce.label == "ceasefire"
        late = [e for e in truce.evidence if e.kind == "escalation" and e.modality == "event"]
        assert late
        assert all(e.weight < 0.7 for e in late)

    def test_weeks_of_fighting_before_talks_are_the_cause(self, classifier: Classifier) -> None:
        """'after three weeks of fighting' is background to the talks that are the news."""
        signal = classify(
            classifier,
            "The two armies began talks in Jeddah aimed at securing a ceasefire after three "
            "weeks of fighting.",
        )
        assert signal.label == "ceasefire"
        assert [e.modality for e in signal.evidence if e.kind == "escalation"] == ["background"]

    def test_a_summoned_ambassador_is_a_reported_claim(self, classifier: Classifier) -> None:
        """Diplomatic protests about an attack report it; they are not the attack."""
        signal = classify(
            classifier,
            "Hanoi summoned the Chinese ambassador over an air strike on an island outpost.",
        )
        assert [e.modality for e in signal.evidence] == ["reported"]
        assert signal.label == "none"

    def test_a_condition_is_not_an_event(self, classifier: Classifier) -> None:
        """'will demobilise if', 'unless troops withdraw' are conditions, weaker than the act."""
        conditional = classify(
            classifier, "The militia said it would only demobilize if its leaders were pardoned."
        )
        done = classify(classifier, "The militia demobilized its fighters on Sunday.")
        assert conditional.ceasefire < done.ceasefire
        assert done.label == "ceasefire"
        assert conditional.label == "none"

    def test_a_pledge_of_peacekeepers_is_ceasefire_intent(self, classifier: Classifier) -> None:
        """Offering troops to a peacekeeping force is ceasefire intent, not mobilisation."""
        signal = classify(
            classifier,
            "Indonesia is ready to contribute up to 1,500 troops to a peacekeeping force on the "
            "border, its defence minister said.",
        )
        assert signal.label == "ceasefire"
        assert signal.flags[0].modality == "intent"
        assert signal.escalation < 0.5

    @pytest.mark.parametrize(
        "text",
        [
            "The Secretary-General sent condolences after the death of a veteran diplomat.",
            "Israel is opposed to Egyptian mediation in talks on the water dispute, an aide said.",
            "Trade ministers held talks in Geneva on tariffs for farm goods.",
            "The union appealed to its members for an end to the strike.",
        ],
    )
    def test_diplomacy_and_civilian_titles_are_none(
        self, classifier: Classifier, text: str
    ) -> None:
        """A secretary-general is no general, and talks or appeals about trade are no truce."""
        assert classify(classifier, text).label == "none"


class TestSeverity:
    def test_deaths_raise_severity(self, classifier: Classifier) -> None:
        """Ten or more killed is critical; troop movements alone are low."""
        deadly = classify(classifier, "Artillery fire on the border killed 12 soldiers.")
        moves = classify(classifier, "Thailand deployed reinforcements to the border.")
        assert deadly.severity == Severity.CRITICAL
        assert deadly.figures.killed == 12
        assert moves.label == "escalation"
        assert moves.severity == Severity.LOW
